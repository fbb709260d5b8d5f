"""``crossrank train --data FILE.csv --label COL``: the schema inferred, printed and saved; predict
and evaluate apply the saved schema and name the columns a file lacks. On the shared data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crossrank.cli import main

# ../shared/data beside the repository (tests skip cleanly when it is absent)
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TINY = ["--epochs", "1", "--no-progress", "--embedding-dim", "4", "--batch-size", "256",
        "--model-option", "deep_layers=[8]"]


@pytest.fixture(scope="module")
def movielens_csv(tmp_path_factory):
    """The first 6,000 MovieLens-100K ratings joined with the users, flattened to CSV."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    shared = SHARED_DATA / "movielens-100k"
    users = {}
    for line in (shared / "u.user").read_text(encoding="latin-1").splitlines():
        uid, age, gender, occupation, zip_code = line.split("|")
        users[uid] = (age, gender, occupation, zip_code)
    path = tmp_path_factory.mktemp("ml") / "ratings.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["user_id", "movie_id", "rating", "timestamp", "age", "gender",
                         "occupation", "zip_code"])
        for line in (shared / "u.data").read_text().splitlines()[:6000]:
            user, movie, rating, timestamp = line.split()
            writer.writerow([user, movie, rating, timestamp, *users[user]])
    return path


def test_movielens_csv_trains_with_an_inferred_schema(movielens_csv, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(movielens_csv), "--format", "csv", "--label", "rating",
                 "--task", "regression", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "schema inferred" in printed and "zip_code" in printed  # the table, per column
    meta = json.loads((out / "model.json").read_text())
    schema = meta["table_schema"]
    assert schema["dense"] == ["timestamp"]
    assert set(schema["categorical"]) == {"user_id", "movie_id", "age", "gender", "occupation",
                                          "zip_code"}
    kinds = {c["name"]: c["kind"] for c in meta["inferred_schema"]["columns"]}
    assert kinds["rating"] == "label" and kinds["gender"] == "categorical"
    # the resolved configuration names every column: training from it infers nothing new
    assert meta["run_config"]["schema"]["categorical"] == schema["categorical"]
    assert main(["evaluate", str(out), "--data", str(movielens_csv)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["rows"] == 6000 and 0 < metrics["rmse"] < 2


def test_predict_names_the_columns_a_file_lacks(movielens_csv, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(movielens_csv), "--label", "rating",
                 "--task", "regression", "--out", str(out), *TINY]) == 0
    lines = movielens_csv.read_text().splitlines()
    header = lines[0].split(",")
    drop = [header.index("occupation"), header.index("age")]
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("".join(",".join(v for i, v in enumerate(line.split(","))
                                        if i not in drop) + "\n" for line in lines[:50]))
    capsys.readouterr()
    assert main(["predict", str(out), "--data", str(lacking), "--out",
                 str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacking.csv" in err
    assert "occupation" in err and "age" in err
    # evaluate needs the label too
    unlabelled = tmp_path / "unlabelled.csv"
    rating = header.index("rating")
    unlabelled.write_text("".join(",".join(v for i, v in enumerate(line.split(","))
                                           if i != rating) + "\n" for line in lines[:50]))
    assert main(["evaluate", str(out), "--data", str(unlabelled)]) == 2
    assert "rating" in capsys.readouterr().err
    # predict scores unlabelled rows
    assert main(["predict", str(out), "--data", str(unlabelled), "--out",
                 str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 50


def test_criteo_csv_sample_trains_with_an_inferred_schema(shared_data, tmp_path):
    out = tmp_path / "model"
    sample = shared_data / "criteo" / "criteo_sample200.csv"
    assert main(["train", "--data", str(sample), "--format", "csv", "--label", "label",
                 "--out", str(out), *TINY]) == 0
    schema = json.loads((out / "model.json").read_text())["table_schema"]
    assert schema["dense"] == [f"I{i}" for i in range(1, 14)]
    assert schema["categorical"] == [f"C{i}" for i in range(1, 27)]


def test_a_misspelled_label_is_one_line(movielens_csv, tmp_path, capsys):
    assert main(["train", "--data", str(movielens_csv), "--label", "ratin",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'rating'" in err
