"""Weighted metrics, NE and calibration against scikit-learn's sample_weight and explicit
float64 formulas; integer weights equal repeated rows."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from crossrank.train.metrics import compute_metrics
from crossrank.train.weighted_metrics import weighted_auc, weighted_logloss
from tolerances import TOLERANCES

RTOL, ATOL = TOLERANCES[torch.float64]


def _data(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    y[:2] = [0, 1]
    s = np.round(rng.random(n), 1) if ties else rng.uniform(0.01, 0.99, n)
    w = rng.integers(0, 4, n).astype(np.float64)
    w[:2] = [1, 2]
    return s, y, w


@pytest.mark.parametrize("n,ties", [(7, False), (1000, True), (70_001, False)])
def test_weighted_binary_metrics_equal_scikit_learn(n, ties):
    s, y, w = _data(n, n, ties)
    m = compute_metrics("binary", s, y, w)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s, sample_weight=w), rel=RTOL, abs=ATOL)
    clipped = np.clip(s, 1e-15, 1 - 1e-15)  # crossrank's clipping (scikit-learn's eps varies)
    assert m["logloss"] == pytest.approx(log_loss(y, clipped, sample_weight=w, labels=[0, 1]),
                                         rel=RTOL, abs=ATOL)
    ybar = np.sum(w * y) / np.sum(w)
    entropy = -(ybar * math.log(ybar) + (1 - ybar) * math.log(1 - ybar))
    assert m["ne"] == pytest.approx(m["logloss"] / entropy, rel=RTOL)
    assert m["calibration"] == pytest.approx(np.sum(w * s) / np.sum(w * y), rel=RTOL)
    assert m["positive_rate"] == pytest.approx(ybar, rel=RTOL)
    assert m["accuracy"] == pytest.approx(np.average((s >= 0.5) == (y >= 0.5), weights=w))
    assert m["weight_sum"] == w.sum() and m["rows"] == n


def test_unweighted_ne_and_calibration_use_this_sets_mean_label():
    s, y, _ = _data(500, 3)
    m = compute_metrics("binary", s, y)
    ybar = y.mean()
    entropy = -(ybar * math.log(ybar) + (1 - ybar) * math.log(1 - ybar))
    assert m["ne"] == pytest.approx(log_loss(y, s) / entropy, rel=RTOL)
    assert m["calibration"] == pytest.approx(s.sum() / y.sum(), rel=RTOL)
    assert "weight_sum" not in m
    # predicting the set's own mean label for every row: NE exactly 1, calibration 1
    flat = compute_metrics("binary", np.full(500, ybar), y)
    assert flat["ne"] == pytest.approx(1.0, rel=RTOL) and flat["calibration"] == pytest.approx(1)


def test_weighted_regression_metrics_equal_scikit_learn():
    rng = np.random.default_rng(5)
    s, y, w = rng.normal(size=300), rng.normal(size=300), rng.integers(0, 5, 300).astype(float)
    m = compute_metrics("regression", s, y, w)
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, s, sample_weight=w)),
                                      rel=RTOL)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, s, sample_weight=w), rel=RTOL)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_integer_weights_equal_repeated_rows_and_zero_weights_drop_them(task):
    s, y, w = _data(400, 11, ties=True)  # ties: the AUC's half credit must repeat too
    weighted = compute_metrics(task, s, y, w)
    repeated = compute_metrics(task, np.repeat(s, w.astype(int)), np.repeat(y, w.astype(int)))
    for key, value in repeated.items():
        if key != "rows":
            assert weighted[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key


def test_all_equal_scores_and_one_class():
    y = np.array([0.0, 1.0, 1.0, 0.0])
    w = np.array([1.0, 3.0, 0.5, 2.0])
    assert weighted_auc(np.full(4, 0.3), y, w) == 0.5
    assert math.isnan(weighted_auc(np.array([0.1, 0.2, 0.3, 0.4]), y, np.array([1, 0, 0, 1.0])))
    m = compute_metrics("binary", np.full(4, 0.2), np.zeros(4), w)
    assert math.isnan(m["auc"]) and math.isnan(m["ne"]) and math.isnan(m["calibration"])
    assert weighted_logloss(np.full(4, 0.2), np.zeros(4), w) == pytest.approx(-math.log(0.8))


def test_bad_weights_are_errors():
    s, y = np.array([0.2, 0.8]), np.array([0.0, 1.0])
    for bad, match in (([1.0, -1.0], ">= 0"), ([1.0, np.nan], "finite"), ([0.0, 0.0], "sum to 0"),
                       ([1.0], "rows")):
        with pytest.raises(ValueError, match=match):
            compute_metrics("binary", s, y, np.array(bad))
