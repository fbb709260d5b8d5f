"""Multi-valued fields from the command line: train, evaluate, predict, explain and resume on a
CSV with a ``|``-joined column and on Parquet ``list<string>``."""

import csv
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file

from crossrank.cli import main

GENRES = np.array(["Action", "Comedy", "Drama", "Horror", "Romance", "Western"])
ROWS = 600
SMALL = ["--epochs", "1", "--no-progress", "--batch-size", "64", "--embedding-dim", "4",
         "--model-option", "deep_layers=[8]", "--model-option", "cross.rank=2"]


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    lists = [list(rng.choice(GENRES, rng.integers(0, 5))) for _ in range(n)]
    clicks = [int(rng.random() < (0.7 if "Action" in g else 0.2)) for g in lists]
    return rng, lists, clicks


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_valued")
    rng, lists, clicks = _rows(ROWS, 0)
    lines = ["id,click,price,user,genres"]
    lines += [f"r{i},{c},{rng.random():.3f},u{i % 9},{'|'.join(g)}"
              for i, (g, c) in enumerate(zip(lists, clicks))]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({
        "id": [f"r{i}" for i in range(ROWS)], "click": clicks,
        "price": rng.random(ROWS), "user": [f"u{i % 9}" for i in range(ROWS)],
        "genres": pa.array([[str(x) for x in g] for g in lists], pa.list_(pa.string()))}),
        root / "train.parquet")
    return root


@pytest.fixture(scope="module")
def csv_model(files):
    out = files / "csv_model"
    assert main(["train", "--data", str(files / "train.csv"), "--label", "click",
                 "--id-column", "id", "--multi-valued", "genres:pipe:pooling=mean:max_length=3",
                 "--out", str(out), *SMALL]) == 0
    return out


def test_the_model_reads_the_field_by_name(csv_model):
    meta = json.loads((csv_model / "model.json").read_text())
    schema = meta["model"]["schema"] if "schema" in meta["model"] else meta["schema"]
    assert schema["multi_valued"] == ["genres"] and schema["pooling"] == ["mean"]
    assert schema["multi_valued_widths"] == [3] and schema["multi_valued_sizes"] == [8]
    assert meta["table_schema"]["multi_valued"][0]["max_length"] == 3
    assert "genres:pipe:pooling=mean:max_length=3" in (csv_model / "run.toml").read_text()


def test_evaluate_predict_and_explain(csv_model, files, tmp_path, capsys):
    assert main(["evaluate", str(csv_model), "--data", str(files / "train.csv")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["auc"] > 0.5
    # predict: one line per row, an over-long list kept in its place as a reject
    long = "|".join(["Action"] * 10_001)
    (tmp_path / "p.csv").write_text("id,click,price,user,genres\nq0,,0.5,u1,Drama|Action\n"
                                    f"q1,,0.5,u2,{long}\nq2,,0.5,zz,\nq3,,0.1,u3,Nope|Nope\n")
    assert main(["predict", str(csv_model), "--data", str(tmp_path / "p.csv"), "--out",
                 str(tmp_path / "s.csv"), "--on-bad-rows", "skip"]) == 0
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert [r[0] for r in rows] == ["id", "q0", "", "q2", "q3"]  # a reject's id is unread
    assert rows[2] == ["", "", "list_too_long"]
    assert all(0 < float(r[1]) < 1 for r in rows[1:] if r[2] == "ok")
    assert main(["explain", str(csv_model), "--data", str(files / "train.csv"), "--out",
                 str(tmp_path / "ex")]) == 0
    assert "genres" in (tmp_path / "ex" / "importance.txt").read_text()


def test_parquet_lists_train_and_a_missing_declared_column_is_named(files, tmp_path, capsys):
    assert main(["train", "--data", str(files / "train.parquet"), "--label", "click",
                 "--id-column", "id", "--multi-valued", "genres:|:pooling=max",
                 "--model", "dlrm", "--model-option", "bottom_layers=[8,4]",
                 "--model-option", "interaction=dcn", "--embedding-dim", "4",
                 "--epochs", "1", "--no-progress", "--out", str(tmp_path / "pq")]) == 0
    assert main(["predict", str(tmp_path / "pq"), "--data", str(files / "train.parquet"),
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == ROWS + 1
    capsys.readouterr()
    assert main(["train", "--data", str(files / "train.csv"), "--label", "click",
                 "--multi-valued", "tags:|", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not in the file: multi-valued 'tags'" in err


def test_resume_gives_the_run_trained_straight_through(files, tmp_path):
    argv = ["--data", str(files / "train.csv"), "--label", "click", "--id-column", "id",
            "--multi-valued", "genres:|:keep=last:max_length=2", *SMALL[2:]]
    assert main(["train", *argv, "--epochs", "2", "--out", str(tmp_path / "full")]) == 0
    assert main(["train", *argv, "--epochs", "1", "--out", str(tmp_path / "part")]) == 0
    assert main(["train", "--resume", "--out", str(tmp_path / "part"), "--epochs", "2"]) == 0
    full, resumed = (load_file(str(d / "latest.safetensors"))
                     for d in (tmp_path / "full", tmp_path / "part"))
    assert full.keys() == resumed.keys()
    assert any("bags" in k for k in full)
    for key in full:
        assert (full[key] == resumed[key]).all(), key


def test_a_schema_file_declares_them_too_and_a_conflict_is_named(files, tmp_path):
    from crossrank.data.config import SchemaConfig
    from crossrank.errors import ConfigError
    from crossrank.pipeline.schema import resolve_table_schema

    spec = {"name": "genres", "separator": "|", "pooling": "max"}
    (tmp_path / "s.json").write_text(json.dumps({
        "label": "click", "dense": ["price"], "categorical": ["user"], "id_column": "id",
        "multi_valued": [spec]}))
    found, _ = resolve_table_schema(SchemaConfig(file=str(tmp_path / "s.json")),
                                    str(files / "train.csv"), "csv")
    assert found.multi_valued_names == ("genres",) and found.multi_valued[0].pooling == "max"
    with pytest.raises(ConfigError, match="declares others: give them in one place"):
        resolve_table_schema(SchemaConfig(file=str(tmp_path / "s.json"),
                                          multi_valued=("genres:|",)),
                             str(files / "train.csv"), "csv")
    with pytest.raises(ConfigError, match="schema.multi_valued: .*NAME:SEPARATOR"):
        SchemaConfig(multi_valued=("genres",))


def test_a_config_file_gives_a_table_per_field(files, tmp_path, capsys):
    """[schema.multi_valued.NAME] tables train the model the spec string trains."""
    from crossrank.pipeline.config_file import read_config_file

    config = tmp_path / "run.toml"
    config.write_text('[schema]\nlabel = "click"\nid_column = "id"\n\n'
                      '[schema.multi_valued.genres]\nseparator = "|"\npooling = "mean"\n'
                      'max_length = 3\n')
    assert read_config_file(config)["schema"]["multi_valued"] == [
        "genres:pipe:pooling=mean:max_length=3"]
    out = tmp_path / "table_model"
    assert main(["train", "--data", str(files / "train.csv"), "--config", str(config),
                 "--out", str(out), *SMALL]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["table_schema"]["multi_valued"][0] == {
        "name": "genres", "separator": "|", "pooling": "mean", "max_length": 3,
        "keep": "first", "min_count": 1, "hash_buckets": None}
    # a list of tables with names reads the same; a colon separator survives the spec string
    config.write_text('[schema]\nmulti_valued = [{name = "genres", separator = ":"}]\n')
    assert read_config_file(config)["schema"]["multi_valued"] == ["genres:colon"]
    for body, message in [
        ('[schema.multi_valued.genres]\nseparator = "|"\npoolin = "mean"\n',
         r"run.toml: schema.multi_valued: unknown multi-valued keys \['poolin'\]"),
        ('[schema.multi_valued.genres]\npooling = "median"\n',
         "multi-valued 'genres': pooling must be one of"),
        ('[schema.multi_valued]\ngenres = "|"\n', "one table per column name"),
    ]:
        config.write_text(body)
        assert main(["train", "--data", str(files / "train.csv"), "--config", str(config),
                     "--out", str(tmp_path / "bad"), *SMALL]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and len(err.strip().splitlines()) == 1, err
