"""Weighted metrics over a whole evaluation set, in float64: log-loss, NE, calibration, AUC.

Every metric takes per-row weights ``w >= 0`` (all ones without a weight column); an integer
weight counts a row that many times, weight 0 leaves it out. With ``W = sum_i w_i``::

    log-loss     L   = -(1/W) sum_i w_i (y_i log p_i + (1 - y_i) log(1 - p_i))
    NE           L / H(ybar),  H(q) = -(q log q + (1 - q) log(1 - q)),  ybar = (1/W) sum_i w_i y_i
    calibration  sum_i w_i p_i / sum_i w_i y_i
    AUC          sum_{i pos, j neg} w_i w_j ([p_i > p_j] + [p_i = p_j] / 2) / (W_pos W_neg)
    RMSE, MAE    sqrt((1/W) sum_i w_i (p_i - y_i)^2), (1/W) sum_i w_i |p_i - y_i|

NE (normalized entropy, He et al. 2014) divides by the entropy of the *evaluated set's*
weighted mean label ``ybar`` (as TorchRec does), not the training set's: NE < 1 means the model
beats predicting ``ybar`` for every row of this set. The AUC is scikit-learn's
``roc_auc_score(..., sample_weight=w)`` (the trapezoidal area, which gives tied pairs 1/2).
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK = 1 << 16  # rows per step of the chunked sums


def as_weights(weights: np.ndarray | None, rows: int) -> np.ndarray:
    """``weights`` as float64 (R,), checked finite and >= 0 with a positive sum; ones if None.

    Example:
        >>> as_weights(None, 2).tolist(), as_weights(np.array([0, 2]), 2).tolist()
        ([1.0, 1.0], [0.0, 2.0])
    """
    if weights is None:
        return np.ones(rows)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != rows:
        raise ValueError(f"weights has {len(w)} rows, the scores {rows}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    if not w.sum() > 0:
        raise ValueError("the weights sum to 0: no row counts")
    return w


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The weighted AUC of the module doc; NaN when a class has no weight.

    For each positive, the weight of the negatives below it and tied with it comes from
    cumulative sums over the sorted negatives (binary search), O(R log R) in all.

    Shape:
        scores, labels, weights: (R,) -> a float.

    Example:
        >>> weighted_auc(np.array([0.9, 0.2, 0.6, 0.6]), np.array([1, 0, 0, 1]),
        ...              np.array([1.0, 1.0, 2.0, 1.0]))
        0.8333333333333334
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) >= 0.5
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite to compute the AUC")
    neg_order = np.argsort(s[~positive], kind="stable")
    neg = s[~positive][neg_order]  # (Q,) sorted
    neg_cum = np.concatenate([[0.0], np.cumsum(w[~positive][neg_order])])  # (Q+1,)
    pos, pos_w = s[positive], w[positive]
    w_pos, w_neg = float(pos_w.sum()), float(neg_cum[-1])
    if not (w_pos > 0 and w_neg > 0):
        return float("nan")
    below = ties = 0.0
    for lo in range(0, len(pos), _CHUNK):
        chunk, cw = pos[lo:lo + _CHUNK], pos_w[lo:lo + _CHUNK]
        left = np.searchsorted(neg, chunk, side="left")
        right = np.searchsorted(neg, chunk, side="right")
        below += float(np.dot(cw, neg_cum[left]))
        ties += float(np.dot(cw, neg_cum[right] - neg_cum[left]))
    return (below + 0.5 * ties) / (w_pos * w_neg)


def weighted_logloss(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, *,
                     eps: float = 1e-15) -> float:
    """Weighted mean log-loss, ``p`` clipped to ``[eps, 1 - eps]`` (``weights`` None: every
    row weighs 1, the plain mean).

    Example:
        >>> round(weighted_logloss(np.array([0.9, 0.2]), np.array([1, 0]), np.ones(2)), 6)
        0.164252
    """
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    total = 0.0
    for lo in range(0, len(p), _CHUNK):
        q = np.clip(p[lo:lo + _CHUNK], eps, 1 - eps)
        t = y[lo:lo + _CHUNK]
        terms = t * np.log(q) + (1 - t) * np.log1p(-q)  # (chunk,)
        total += float(np.sum(terms) if w is None else np.dot(w[lo:lo + _CHUNK], terms))
    return -total / (len(p) if w is None else float(w.sum()))


def binary_entropy(q: float) -> float:
    """``H(q) = -(q log q + (1 - q) log(1 - q))`` in nats; NaN outside (0, 1).

    Example:
        >>> round(binary_entropy(0.5), 6), binary_entropy(0.0)
        (0.693147, nan)
    """
    if not 0.0 < q < 1.0:
        return float("nan")
    return -(q * math.log(q) + (1 - q) * math.log1p(-q))


def normalized_entropy(logloss: float, mean_label: float) -> float:
    """NE = ``logloss / H(mean_label)``; NaN when every label weight is on one class.

    Example:
        >>> normalized_entropy(binary_entropy(0.25), 0.25)
        1.0
    """
    h = binary_entropy(mean_label)
    return logloss / h if h == h else float("nan")


def calibration(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """``sum w p / sum w y``: 1 when the predictions add up to the events; NaN without events.

    Example:
        >>> calibration(np.array([0.2, 0.4]), np.array([0.0, 1.0]), np.array([1.0, 1.0]))
        0.6000000000000001
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    events = float(np.dot(w, np.asarray(labels, dtype=np.float64).reshape(-1)))
    predicted = float(np.dot(w, np.asarray(scores, dtype=np.float64).reshape(-1)))
    return predicted / events if events > 0 else float("nan")
