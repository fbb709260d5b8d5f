"""Reliability: predicted against observed event rates in bins of equal row count.

Rows sorted by prediction are cut into ``bins`` consecutive runs of (nearly) equal row count
(equal-count bins put the same evidence behind every point, where equal-width bins leave the
sparse high-probability end with a handful of rows). For each bin b, with row weights w::

    predicted_b = sum_{i in b} w_i p_i / sum_{i in b} w_i
    observed_b  = sum_{i in b} w_i y_i / sum_{i in b} w_i

A calibrated model puts every point on the diagonal; :func:`crossrank.train.weighted_metrics.
calibration` is the same ratio over the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin mean prediction, observed rate, rows and weight. Shape: each (K,) float64."""

    predicted: np.ndarray
    observed: np.ndarray
    rows: np.ndarray
    weight: np.ndarray


def reliability_bins(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None,
                     *, bins: int = 10) -> ReliabilityBins:
    """The equal-count bins of the module doc (fewer than ``bins`` when there are fewer rows;
    bins whose rows all weigh 0 are left out).

    Shape:
        scores, labels, weights: (R,) -> each field (K,), K <= bins.

    Example:
        >>> b = reliability_bins(np.array([0.1, 0.2, 0.7, 0.9]), np.array([0, 1, 1, 1]), bins=2)
        >>> b.predicted.round(2).tolist(), b.observed.tolist(), b.rows.tolist()
        ([0.15, 0.8], [0.5, 1.0], [2.0, 2.0])
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if not len(s) == len(y) == len(w) or not len(s):
        raise ValueError(f"need scores, labels and weights of one positive length, got "
                         f"{len(s)}, {len(y)}, {len(w)}")
    order = np.argsort(s, kind="stable")
    k = min(bins, len(s))
    edges = np.linspace(0, len(s), k + 1).round().astype(np.int64)  # (K+1,) row cuts
    starts = edges[:-1]
    s, y, w = s[order], y[order], w[order]
    weight = np.add.reduceat(w, starts)
    rows = np.diff(edges).astype(np.float64)
    keep = weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.add.reduceat(w * s, starts) / weight
        observed = np.add.reduceat(w * y, starts) / weight
    return ReliabilityBins(predicted[keep], observed[keep], rows[keep], weight[keep])
