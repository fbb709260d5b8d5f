"""Metrics over a whole evaluation set (never averaged per batch), in float64.

AUC and log-loss are computed here, exactly and in little memory, because scikit-learn's
``roc_auc_score`` and ``log_loss`` take ~85 and ~107 bytes per row (107 MB of peak RSS for
a 1M-row validation split, a tenth of a 10M-row run): :func:`binary_auc` sorts the two
classes' scores (8 bytes per row) and counts, :func:`binary_logloss` sums in chunks. Both are
tested against scikit-learn, the reference. RMSE and accuracy are one line each. Weighted
metrics, NE and calibration: :mod:`crossrank.train.weighted_metrics`.
"""

from __future__ import annotations

import numpy as np

from crossrank.train.weighted_metrics import (
    as_weights,
    calibration,
    normalized_entropy,
    weighted_auc,
    weighted_logloss,
)

_CHUNK = 1 << 16  # rows per step of the chunked sums


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2.

    The exact Mann-Whitney count, as ``sklearn.metrics.roc_auc_score``: both classes' scores
    are sorted and, for each positive, the negatives below it and tied with it are counted
    by binary search; the integer counts are exact and divided once.

    Shape:
        scores (R,) finite floats, labels (R,) in {0, 1}, both classes present -> a float.

    Example:
        >>> binary_auc(np.array([0.9, 0.2, 0.6, 0.4, 0.6]), np.array([1, 0, 0, 1, 1]))
        0.75
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) >= 0.5
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite to compute the AUC")
    pos, neg = np.sort(s[positive]), np.sort(s[~positive])  # (P,), (Q,)
    if not len(pos) or not len(neg):
        raise ValueError("the AUC needs both classes in the labels")
    below = ties = 0
    for lo in range(0, len(pos), _CHUNK):
        chunk = pos[lo:lo + _CHUNK]
        left = np.searchsorted(neg, chunk, side="left")  # negatives below each positive
        right = np.searchsorted(neg, chunk, side="right")
        below += int(left.sum())
        ties += int((right - left).sum())
    return (2 * below + ties) / (2 * len(pos) * len(neg))


def binary_logloss(scores: np.ndarray, labels: np.ndarray, *, eps: float = 1e-15) -> float:
    """Mean of ``-(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``.

    Shape:
        scores (R,) probabilities, labels (R,) in [0, 1] -> a float.

    Example:
        >>> round(binary_logloss(np.array([0.9, 0.2]), np.array([1, 0])), 6)
        0.164252
    """
    return weighted_logloss(scores, labels, None, eps=eps)


def compute_metrics(task: str, scores: np.ndarray, labels: np.ndarray,
                    weights: np.ndarray | None = None) -> dict[str, float]:
    """Metrics for predictions ``scores`` (probabilities for "binary", values for "regression").

    With ``weights`` (>= 0, one per row) every metric is weighted
    (:mod:`crossrank.train.weighted_metrics` has the formulas), ``weight_sum`` is reported
    and ``rows`` still counts rows. Binary metrics: log-loss, AUC, accuracy (at 0.5), NE
    (log-loss over the entropy of this set's weighted mean label), calibration (predicted
    over observed events) and the weighted mean label ``positive_rate``.

    Shape:
        scores, labels, weights: (R,) over the whole evaluation set.

    Example:
        >>> m = compute_metrics("binary", np.array([0.1, 0.8, 0.6]), np.array([0, 1, 0]))
        >>> m["auc"], round(m["accuracy"], 3), round(m["calibration"], 3)
        (1.0, 0.667, 1.5)
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ")
    if not len(s):
        raise ValueError("cannot compute metrics on an empty evaluation set")
    w = as_weights(weights, len(s))
    total = float(w.sum())
    out: dict[str, float] = {"rows": float(len(s))}
    if weights is not None:
        out["weight_sum"] = total
    if task == "binary":
        mean_label = float(np.dot(w, y)) / total
        if weights is None:  # exact integer counts
            out["logloss"] = binary_logloss(s, y)
            out["auc"] = binary_auc(s, y) if 0 < y.sum() < len(y) else float("nan")
        else:
            out["logloss"] = weighted_logloss(s, y, w)
            out["auc"] = weighted_auc(s, y, w)
        out["accuracy"] = float(np.dot(w, (s >= 0.5) == (y >= 0.5))) / total
        out["positive_rate"] = mean_label
        out["ne"] = normalized_entropy(out["logloss"], mean_label)
        out["calibration"] = calibration(s, y, w)
    elif task == "regression":
        out["rmse"] = float(np.sqrt(np.dot(w, (s - y) ** 2) / total))
        out["mae"] = float(np.dot(w, np.abs(s - y))) / total
    else:
        raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
    return out


# Whether a larger value of each monitored metric is better.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "rmse": False, "mae": False,
                    "ne": False}

# The metrics each task reports (and may monitor for early stopping); the first is the default.
TASK_METRICS: dict[str, tuple[str, ...]] = {"binary": ("logloss", "auc", "accuracy", "ne"),
                                            "regression": ("rmse", "mae")}


def default_monitor(task: str) -> str:
    """The validation metric early stopping watches when none is chosen.

    Example:
        >>> default_monitor("binary"), default_monitor("regression")
        ('logloss', 'rmse')
    """
    if task not in TASK_METRICS:
        raise ValueError(f"task must be one of {sorted(TASK_METRICS)}, got {task!r}")
    return TASK_METRICS[task][0]
