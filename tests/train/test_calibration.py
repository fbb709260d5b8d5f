"""Reliability bins against an explicit loop; the downsampling recalibration's algebra."""

import math

import numpy as np
import pytest
import torch

from crossrank.data.negative_sampling import log_rate_shift, recalibrate
from crossrank.train.calibration import reliability_bins
from tolerances import TOLERANCES

RTOL, ATOL = TOLERANCES[torch.float64]


def test_reliability_bins_equal_an_explicit_loop():
    rng = np.random.default_rng(2)
    n = 1003  # not a multiple of the bins
    s, y, w = rng.random(n), (rng.random(n) < 0.3).astype(float), rng.integers(1, 4, n) * 1.0
    b = reliability_bins(s, y, w, bins=10)
    order = np.argsort(s, kind="stable")
    cuts = np.linspace(0, n, 11).round().astype(int)
    assert b.rows.sum() == n and b.rows.max() - b.rows.min() <= 1  # equal counts
    for k in range(10):
        rows = order[cuts[k]:cuts[k + 1]]
        assert b.predicted[k] == pytest.approx(np.average(s[rows], weights=w[rows]), rel=RTOL)
        assert b.observed[k] == pytest.approx(np.average(y[rows], weights=w[rows]), rel=RTOL)
        assert b.weight[k] == pytest.approx(w[rows].sum(), rel=RTOL)
    assert np.all(np.diff(b.predicted) >= 0)
    few = reliability_bins(np.array([0.3, 0.1]), np.array([1.0, 0.0]), bins=10)
    assert few.rows.tolist() == [1.0, 1.0] and few.observed.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="bins"):
        reliability_bins(s, y, bins=0)


def test_recalibration_inverts_negative_downsampling():
    q = np.linspace(0.0, 1.0, 101)  # the full data's click probability
    for r in (1.0, 0.5, 0.1, 0.01):
        p = q / (q + r * (1 - q))  # what a model of the downsampled data estimates
        assert np.allclose(recalibrate(p, r), q, rtol=RTOL, atol=ATOL)
        t = recalibrate(torch.from_numpy(p), r)
        assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.from_numpy(q))
        inner = (q > 0) & (q < 1)
        logit = np.log(p[inner] / (1 - p[inner])) + log_rate_shift(r)
        assert np.allclose(1 / (1 + np.exp(-logit)), q[inner], rtol=RTOL, atol=ATOL)
    assert recalibrate(np.array([0.5]), 0.25)[0] == pytest.approx(0.5 / (0.5 + 0.5 / 0.25))
    for bad in (0.0, -0.1, 1.5, math.nan, True):
        with pytest.raises(ValueError, match="negative_sampling_rate"):
            recalibrate(np.array([0.5]), bad)
