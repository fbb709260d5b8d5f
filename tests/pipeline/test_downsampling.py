"""A model trained on negatively downsampled data, recalibrated, is calibrated on the full data.

The data: N = 40,000 rows, a category c of 8 equally likely values with click rates
q_c = 0.02 ... 0.2 (mean 0.11), and a dense column of noise. Training keeps every positive and
each negative with probability r = 0.2 (~11,500 rows). A model that learns the training rate of
each category, p_c = P_c / (P_c + K_c) (P_c positives, K_c kept negatives), recalibrated gives
P_c / (P_c + K_c / r); K_c / r estimates the category's M_c negatives with relative standard
deviation sqrt((1 - r) / (r M_c)) = 3.0% for M_c = 5000 * 0.89, so each category's predicted
events are off by ~(1 - q_c) 3.0% = 2.7%, and their sum over 8 independent categories by
~1.0%: the full data's calibration (predicted over observed events, the positives being the
same rows) is 1 within ~1% plus the model's fit error, and the bound 0.05 is ~4 of those
standard deviations. (Seven seeds of the generator give 0.99 ... 1.02 with these settings.) Without the
recalibration the same model over-predicts about threefold.
"""

import csv
import json

import numpy as np
import pytest

from crossrank.cli import main

N, RATE = 40_000, 0.2


def test_recalibrated_downsampled_model_is_calibrated_on_the_full_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    c, x = rng.integers(0, 8, N), rng.random(N)
    y = (rng.random(N) < np.linspace(0.02, 0.2, 8)[c]).astype(int)

    def write(path, rows):
        path.write_text("label,c,x\n" + "".join(f"{y[i]},{c[i]},{x[i]:.4f}\n" for i in rows))

    write(tmp_path / "full.csv", range(N))
    write(tmp_path / "down.csv", np.flatnonzero((y == 1) | (rng.random(N) < RATE)))
    assert main(["train", "--data", str(tmp_path / "down.csv"), "--out", str(tmp_path / "m"),
                 "--categorical", "c", "--dense", "x", "--negative-sampling-rate", str(RATE),
                 "--valid-fraction", "0", "--epochs", "6", "--lr", "0.02", "--schedule",
                 "cosine", "--batch-size", "512", "--model", "dnn", "--model-option",
                 "deep_layers=[8]", "--embedding-dim", "4", "--no-progress"]) == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())[
        "negative_sampling_rate"] == RATE
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(tmp_path / "full.csv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["negative_sampling_rate"] == RATE
    assert abs(metrics["calibration"] - 1) < 0.05
    # predict applies the same recalibration; undone, the model over-predicts
    assert main(["predict", str(tmp_path / "m"), "--data", str(tmp_path / "full.csv"),
                 "--out", str(tmp_path / "s.csv")]) == 0
    q = np.array([float(r["score"]) for r in csv.DictReader(open(tmp_path / "s.csv"))])
    assert q.sum() / y.sum() == pytest.approx(metrics["calibration"], rel=1e-5)
    raw = q / (q + RATE * (1 - q))  # the model's own p, from q = p / (p + (1 - p) / r)
    assert raw.sum() / y.sum() > 2.5
    # the export recalibrates inside its graph: the scorer gives predict's scores
    from crossrank.serving import Scorer

    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "e")]) == 0
    served = Scorer(tmp_path / "e").score_file(tmp_path / "full.csv")
    np.testing.assert_allclose(served, q, rtol=0, atol=1e-5)
