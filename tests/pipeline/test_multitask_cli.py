"""Multi-task from the command line: train on click and conversion (missing where there was no
click), evaluate per task, predict one column per label, the model directory's round trip and
checksums, export refused, and the bad values as one-line errors."""

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from crossrank.cli import main
from crossrank.data.synthetic import make_synthetic_clicks
from crossrank.data.writers import write_table
from crossrank.errors import ModelFileError
from crossrank.pipeline.model_dir import load_model_dir

SMALL = ["--no-progress", "--model-option", "deep_layers=[8]", "--model-option",
         "multitask.tower_layers=[4]", "--embedding-dim", "4", "--batch-size", "128"]


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    table = make_synthetic_clicks(1500, seed=3, num_dense=2, num_categorical=4, vocab_size=20,
                                  planted_pairs=((0, 1),), planted_triples=(),
                                  conversion_pairs=((0, 2),))
    table = table.rename_columns(["click" if n == "label" else n for n in table.column_names])
    write_table(table, root / "d.csv", fmt="csv")
    assert main(["train", "--data", str(root / "d.csv"), "--out", str(root / "m"),
                 "--label", "click,conversion", "--task-weights", "1,0.5", "--epochs", "2",
                 "--monitor", "conversion/auc", *SMALL]) == 0
    return root, table


def test_training_records_both_labels_and_per_task_metrics(multi_run):
    root, table = multi_run
    meta = json.loads((root / "m" / "model.json").read_text())
    assert meta["table_schema"]["label"] == ["click", "conversion"]
    assert meta["model"]["task"] == ["binary", "binary"]
    assert meta["run_config"]["schema"]["label"] == "click,conversion"
    assert {"click/auc", "conversion/auc", "conversion/rows", "mean/logloss"} <= set(
        meta["refit"]["first_pass"]["valid_metrics"])  # the saved model is refit
    labels = np.load(root / "m" / "cache" / "label.npy")
    assert labels.shape == (1500, 2)
    conversion = table.column("conversion").to_numpy(zero_copy_only=False).astype(np.float32)
    np.testing.assert_array_equal(labels[:, 1], conversion)  # NaN kept, the row not rejected


def test_evaluate_and_predict_report_each_task(multi_run, tmp_path, capsys):
    root, table = multi_run
    capsys.readouterr()
    assert main(["evaluate", str(root / "m"), "--data", str(root / "d.csv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert main(["predict", str(root / "m"), "--data", str(root / "d.csv"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["click", "conversion", "status"]
    scores = np.array([[float(a), float(b)] for a, b, _ in rows[1:]])
    click = table.column("click").to_numpy()
    conversion = table.column("conversion").to_numpy(zero_copy_only=False).astype(float)
    seen = ~np.isnan(conversion)
    # the columns are the tasks' probabilities: the AUCs evaluate reports (8 digits in the CSV)
    assert metrics["click/auc"] == pytest.approx(roc_auc_score(click, scores[:, 0]), abs=1e-4)
    assert metrics["conversion/auc"] == pytest.approx(
        roc_auc_score(conversion[seen], scores[seen, 1]), abs=1e-4)
    assert metrics["conversion/rows"] == seen.sum()
    model, _, encoder, schema = load_model_dir(root / "m")  # the saved model, reloaded
    batch = encoder.transform(table)
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(batch.dense), torch.from_numpy(batch.sparse)))
    np.testing.assert_allclose(p.numpy(), scores, rtol=1e-6)


def test_a_changed_weight_file_is_refused_and_export_says_why(multi_run, tmp_path, capsys):
    root, _ = multi_run
    assert main(["export", str(root / "m"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert "export takes a single-task model" in err and "\n" not in err
    copy = tmp_path / "m"
    copy.mkdir()
    for f in (root / "m").iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    (copy / "encoder").mkdir()
    for f in (root / "m" / "encoder").iterdir():
        (copy / "encoder" / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model_dir(copy)


@pytest.mark.parametrize("argv, message", [
    (["--task-weights", "1,0.5,2"], "task_weights has 3 values for 2 labels"),
    (["--task-weights", "1,-1"], "task_weights must be finite numbers >= 0"),
    (["--label", "click,cost"], "not in the file: label 'cost'"),
    (["--model-option", "multitask.arch=mmoe", "--model-option", "multitask.num_experts=0"],
     "num_experts must be an integer >= 1"),
    (["--task", "binary,binary,binary"], "3 tasks"),
    (["--monitor", "cost/auc"], "names no label"),
])
def test_bad_multi_task_values_are_one_line_errors(multi_run, tmp_path, capsys, argv, message):
    root, _ = multi_run
    args = ["train", "--data", str(root / "d.csv"), "--out", str(tmp_path / "x"), "--epochs",
            "1", *SMALL]
    if "--label" not in argv:
        args += ["--label", "click,conversion"]
    assert main(args + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_explain_reads_the_shared_body_and_refuses_mmoe_in_one_line(multi_run, tmp_path,
                                                                      capsys):
    root, _ = multi_run
    capsys.readouterr()
    assert main(["explain", str(root / "m"), "--out", str(tmp_path / "x")]) == 0
    assert "the shared body of 2 tasks (click, conversion)" in capsys.readouterr().out
    assert (tmp_path / "x" / "importance.json").is_file()
    assert main(["train", "--data", str(root / "d.csv"), "--out", str(tmp_path / "mmoe"),
                 "--label", "click,conversion", "--epochs", "1", "--model-option",
                 "multitask.arch=mmoe", "--model-option", "multitask.num_experts=2",
                 *SMALL]) == 0
    capsys.readouterr()
    assert main(["explain", str(tmp_path / "mmoe")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has one per expert" in err and "\n" not in err
