"""train -> evaluate -> predict from files, through the library and the CLI."""

import csv
import json

import pytest

from crossrank.cli import main
from crossrank.data import write_default_synthetic


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A DCN trained by the CLI on synthetic Criteo-shaped clicks (train and held-out test)."""
    root = tmp_path_factory.mktemp("e2e")
    # Train and held-out test samples of the same synthetic click model.
    write_default_synthetic(root / "train.tsv", 20_000, seed=1)
    write_default_synthetic(root / "test.tsv", 4_000, seed=2)
    code = main(["train", "--data", str(root / "train.tsv"), "--out", str(root / "model"),
                 "--epochs", "3", "--no-progress", "--model-option", "cross.rank=8",
                 "--model-option", "deep_layers=[32]", "--embedding-dim", "8",
                 "--lr", "3e-3", "--weight-decay", "1e-6", "--batch-size", "256",
                 "--seed", "0"])
    assert code == 0
    return root


def test_train_writes_a_complete_model_directory(synthetic_run):
    model_dir = synthetic_run / "model"
    for name in ("model.safetensors", "model.json", "metrics.jsonl", "state.json"):
        assert (model_dir / name).is_file(), name
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["model"]["name"] == "dcn" and meta["table_schema"]["label"] == "label"
    assert meta["train_config"]["epochs"] == 3
    assert meta["train_config"]["weight_decay"] == 1e-6


def test_evaluate_on_held_out_synthetic_data(synthetic_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(synthetic_run / "model"), "--data",
                 str(synthetic_run / "test.tsv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["rows"] == 4000
    # The planted crosses are learnable: well above chance, better than the base rate.
    assert metrics["auc"] > 0.70
    p = metrics["positive_rate"]
    base_logloss = -(p * __import__("math").log(p) + (1 - p) * __import__("math").log(1 - p))
    assert metrics["logloss"] < base_logloss - 0.02


def test_predict_one_score_per_row_in_order(synthetic_run, tmp_path):
    out = tmp_path / "scores.csv"
    # Unlabelled input: drop the label field of each Criteo row.
    lines = (synthetic_run / "test.tsv").read_text().splitlines()[:500]
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("".join(line.split("\t", 1)[1] + "\n" for line in lines))
    assert main(["predict", str(synthetic_run / "model"), "--data", str(unlabelled),
                 "--format", "criteo", "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["score", "status"] and len(rows) == 501
    assert {r[1] for r in rows[1:]} == {"ok"}
    scores = [float(r[0]) for r in rows[1:]]
    assert all(0 < s < 1 for s in scores)
    # Same rows with labels give the same scores in the same order.
    labelled = tmp_path / "labelled.tsv"
    labelled.write_text("\n".join(lines) + "\n")
    out2 = tmp_path / "scores2.csv"
    assert main(["predict", str(synthetic_run / "model"), "--data", str(labelled),
                 "--out", str(out2)]) == 0
    assert [float(r[0]) for r in list(csv.reader(out2.open()))[1:]] == scores


def test_predict_keeps_the_id_column(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    n = 300
    table = pa.table({"row_id": [f"r{i}" for i in range(n)],
                      "label": [float(i % 3 == 0) for i in range(n)],
                      "price": [float(i % 7) for i in range(n)],
                      "city": [f"c{i % 5}" for i in range(n)]})
    pacsv.write_csv(table, tmp_path / "d.csv")
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--label", "label", "--dense", "price",
                 "--categorical", "city", "--id-column", "row_id", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "m"), "--model-option",
                 "deep_layers=[8]"]) == 0
    assert main(["predict", str(tmp_path / "m"), "--data", str(tmp_path / "d.csv"),
                 "--out", str(tmp_path / "s.csv")]) == 0
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert rows[0] == ["row_id", "score", "status"]
    assert [r[0] for r in rows[1:]] == [f"r{i}" for i in range(n)]


def test_resume_continues_an_interrupted_cli_run(tmp_path):
    write_default_synthetic(tmp_path / "t.tsv", 3000, seed=3)
    args = ["train", "--data", str(tmp_path / "t.tsv"), "--no-progress", "--epochs", "2",
            "--model-option", "deep_layers=[8]", "--model-option", "cross.rank=4",
            "--embedding-dim", "4", "--patience", "5"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    # "Interrupt" after one epoch: train 1 epoch, then resume with the full budget.
    assert main(args[:-6] + ["--epochs", "1", "--model-option", "deep_layers=[8]",
                             "--model-option", "cross.rank=4", "--embedding-dim", "4",
                             "--patience", "5", "--out", str(tmp_path / "part")]) == 0
    assert main(args + ["--out", str(tmp_path / "part"), "--resume"]) == 0
    from safetensors.torch import load_file

    full = load_file(str(tmp_path / "full" / "latest.safetensors"))
    part = load_file(str(tmp_path / "part" / "latest.safetensors"))
    assert full.keys() == part.keys()
    for key in full:
        assert (full[key] == part[key]).all(), key


def test_criteo_sample_csv_end_to_end(shared_data, tmp_path, capsys):
    sample = shared_data / "criteo" / "criteo_sample200.csv"
    assert main(["train", "--data", str(sample), "--epochs", "2", "--no-progress",
                 "--out", str(tmp_path / "m"), "--model-option", "deep_layers=[16]",
                 "--model-option", "cross.rank=4", "--embedding-dim", "4"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(sample)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["rows"] == 200 and 0.0 < metrics["logloss"] < 1.0


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    good_fields = ["1"] + ["3"] * 13 + ["ab12"] * 26
    bad_fields = ["0"] + ["x"] + ["3"] * 12 + ["ab12"] * 26
    bad.write_text("\t".join(good_fields) + "\n" + "\t".join(bad_fields) + "\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "m"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bad.tsv" in err and "line 2" in err and "I1" in err
    assert main(["evaluate", str(tmp_path / "nowhere"), "--data", str(bad)]) == 2
    assert "not a crossrank model directory" in capsys.readouterr().err
    assert main(["train", "--model-option", "rnak=3", "--out", str(tmp_path / "m2"),
                 "--synthetic-rows", "500", "--no-progress"]) == 2
    assert "unknown option 'model.rnak'; did you mean 'model.cross.rank'?" in capsys.readouterr().err


def test_skip_bad_rows_counts_and_writes_rejects(tmp_path, capsys):
    good = ["1"] + ["3"] * 13 + ["ab12"] * 26
    bad_value = ["0", "x"] + ["3"] * 12 + ["ab12"] * 26
    lines = ["\t".join(good)] * 30 + ["\t".join(bad_value), "\t".join(good[:10])]
    lines += ["\t".join(good)] * 10
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(tmp_path / "d.tsv"), "--on-bad-rows", "skip",
                 "--out", str(tmp_path / "m"), "--epochs", "1", "--no-progress",
                 "--model-option", "deep_layers=[4]", "--embedding-dim", "2"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 bad rows" in out and "40 rows" in out.replace(",", "")
    rejects = [json.loads(line) for line in (tmp_path / "m" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["column"], r["reason"]) for r in rejects] == [
        (31, "I1", "non_numeric"), (32, None, "wrong_field_count")]


def test_shards_give_the_same_model_and_metrics_as_one_file(tmp_path, capsys):
    write_default_synthetic(tmp_path / "all.tsv", 3000, seed=4)
    lines = (tmp_path / "all.tsv").read_text().splitlines(keepends=True)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, 3000, 1000)):  # part-0.tsv, part-1.tsv, part-2.tsv
        (shards / f"part-{i}.tsv").write_text("".join(lines[start:start + 1000]))
    common = ["--no-progress", "--epochs", "2", "--model-option", "deep_layers=[8]",
              "--model-option", "cross.rank=4", "--embedding-dim", "4"]
    assert main(["train", "--data", str(tmp_path / "all.tsv"), "--out", str(tmp_path / "one"),
                 *common]) == 0
    assert main(["train", "--data", str(shards), "--format", "criteo",
                 "--out", str(tmp_path / "many"), *common]) == 0
    capsys.readouterr()
    metrics = []
    for run in ("one", "many"):
        assert main(["evaluate", str(tmp_path / run), "--data", str(tmp_path / "all.tsv")]) == 0
        metrics.append(json.loads(capsys.readouterr().out))
    assert metrics[0] == metrics[1] and metrics[0]["rows"] == 3000


def test_infer_format_names_an_unknown_format_and_reads_extensions(tmp_path):
    from crossrank.data import infer_format

    assert infer_format(tmp_path / "day.tsv", None) == "criteo"
    assert infer_format(tmp_path / "x.csv", "parquet") == "parquet"
    with pytest.raises(ValueError, match="format must be one of .*'tsv'"):
        infer_format(tmp_path / "day.tsv", "tsv")
    with pytest.raises(ValueError, match="cannot tell the format"):
        infer_format(tmp_path / "day.json", None)
