"""Row weights from a file's column through the cache; evaluate's group AUC (by a column that
is not a feature) and reliability diagram; the options' bad values as one-line errors."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from crossrank.cli import main

SMALL = ["--no-progress", "--model-option", "deep_layers=[8]", "--embedding-dim", "4",
         "--batch-size", "128"]


def _write(path, rows=1200, seed=0, bad=()):
    rng = np.random.default_rng(seed)
    user, ad, x = rng.integers(0, 40, rows), rng.integers(0, 10, rows), rng.random(rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(2 - 2.5 * (ad % 3 == 0) - x))).astype(int)
    w = rng.integers(0, 4, rows)
    lines = ["label,user,ad,x,w"] + [f"{y[i]},u{user[i]},{ad[i]},{x[i]:.4f},{w[i]}"
                                     for i in range(rows)]
    for i, weight in bad:  # (row, replacement weight text)
        lines[1 + i] = lines[1 + i].rsplit(",", 1)[0] + "," + weight
    path.write_text("\n".join(lines) + "\n")
    return y, w, user


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("weighted")
    y, w, user = _write(root / "d.csv")
    assert main(["train", "--data", str(root / "d.csv"), "--out", str(root / "m"),
                 "--weight-column", "w", "--categorical", "ad", "--dense", "x",
                 "--exclude", "user", "--epochs", "2", *SMALL]) == 0
    return root, y, w, user


def test_the_weight_column_travels_through_the_cache_and_into_the_metrics(weighted_run):
    root, _, w, _ = weighted_run
    assert np.array_equal(np.load(root / "m" / "cache" / "weight.npy"), w.astype(np.float32))
    meta = json.loads((root / "m" / "model.json").read_text())
    assert meta["table_schema"]["weight"] == "w"
    assert meta["run_config"]["schema"]["weight_column"] == "w"
    assert meta["negative_sampling_rate"] == 1.0
    # the validation rows' (of the first pass: the saved model is refit on every row)
    assert meta["refit"]["first_pass"]["valid_metrics"]["weight_sum"] == w[-len(w) // 10:].sum()
    assert "weight_column = \"w\"" in (root / "m" / "run.toml").read_text()


def test_evaluate_groups_by_a_column_that_is_not_a_feature(weighted_run, tmp_path, capsys):
    root, y, w, user = weighted_run
    capsys.readouterr()
    assert main(["evaluate", str(root / "m"), "--data", str(root / "d.csv"), "--group-by",
                 "user", "--plots", str(tmp_path / "plots"), "--bins", "5"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # the reference: predict's scores, a loop over the users with scikit-learn's weighted AUC
    assert main(["predict", str(root / "m"), "--data", str(root / "d.csv"), "--out",
                 str(tmp_path / "s.csv")]) == 0
    s = np.array([float(r["score"]) for r in csv.DictReader(open(tmp_path / "s.csv"))])
    aucs, sizes = [], []
    for u in np.unique(user):
        at = user == u
        if np.sum(w[at] * y[at]) > 0 and np.sum(w[at] * (1 - y[at])) > 0:
            aucs.append(roc_auc_score(y[at], s[at], sample_weight=w[at]))
            sizes.append(w[at].sum())
    # predict writes 8 significant digits: ties may differ, so a loose bound on the means
    assert metrics["gauc"] == pytest.approx(np.dot(sizes, aucs) / np.sum(sizes), abs=2e-3)
    assert metrics["uauc"] == pytest.approx(np.mean(aucs), abs=2e-3)
    assert metrics["gauc_groups"] == 40 and metrics["gauc_groups_skipped"] == 40 - len(aucs)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-4)
    assert metrics["calibration"] == pytest.approx(np.dot(w, s) / np.dot(w, y), rel=1e-5)
    png = (tmp_path / "plots" / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_predict_needs_no_weight_column(weighted_run, tmp_path):
    root = weighted_run[0]
    lines = (root / "d.csv").read_text().splitlines()
    (tmp_path / "new.csv").write_text("\n".join(",".join(li.split(",")[1:4])
                                                for li in lines[:50]) + "\n")
    assert main(["predict", str(root / "m"), "--data", str(tmp_path / "new.csv"), "--out",
                 str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 50


def test_missing_and_negative_weights_are_bad_rows_and_zero_weights_are_kept(tmp_path, capsys):
    _write(tmp_path / "d.csv", rows=300, bad=[(5, "-1"), (9, ""), (12, "abc"), (20, "0")])
    common = ["--data", str(tmp_path / "d.csv"), "--weight-column", "w", "--categorical", "ad",
              "--dense", "x", "--exclude", "user", "--epochs", "1", *SMALL]
    assert main(["train", *common, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 7, column w" in err and "-1" in err
    assert main(["train", *common, "--out", str(tmp_path / "b"), "--on-bad-rows", "skip"]) == 0
    rejects = [json.loads(x) for x in (tmp_path / "b" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (7, "bad_weight"), (11, "missing_weight"), (14, "non_numeric")]
    assert len(np.load(tmp_path / "b" / "cache" / "weight.npy")) == 297  # weight 0 kept


@pytest.mark.parametrize("argv,message", [
    (["--negative-sampling-rate", "0"], "negative_sampling_rate must be in (0, 1]"),
    (["--negative-sampling-rate", "1.5"], "negative_sampling_rate must be in (0, 1]"),
    (["--weight-column", "label"], "weight_column 'label' is also a label column"),
    (["--weight-column", "x", "--dense", "x"], "weight_column 'x' is also a dense column"),
])
def test_bad_training_options_are_one_line_errors(tmp_path, capsys, argv, message):
    _write(tmp_path / "d.csv", rows=50)
    code = main(["train", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m"),
                 "--epochs", "1", *SMALL, *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_a_weight_column_for_criteo_files_is_an_error(tmp_path, capsys):
    (tmp_path / "d.tsv").write_text("\t".join(["1"] + ["3"] * 13 + ["ab"] * 26) + "\n")
    assert main(["train", "--data", str(tmp_path / "d.tsv"), "--weight-column", "w",
                 "--out", str(tmp_path / "m")]) == 2
    assert "without a weight column" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--group-by", "label"], "the group column 'label' is the label column"),
    (["--group-by", "nope"], "lacks group column 'nope'"),
    (["--bins", "0"], "bins must be a positive integer"),
])
def test_bad_evaluate_options_are_one_line_errors(weighted_run, capsys, argv, message):
    root = weighted_run[0]
    code = main(["evaluate", str(root / "m"), "--data", str(root / "d.csv"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err
