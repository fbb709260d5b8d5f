"""Metrics over a whole evaluation set (never averaged per batch), in float64.

AUC and log-loss come from scikit-learn; RMSE and accuracy are one line each.
"""

from __future__ import annotations

import numpy as np


def compute_metrics(task: str, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics for predictions ``scores`` (probabilities for "binary", values for "regression").

    Shape:
        scores, labels: (R,) over the whole evaluation set.

    Example:
        >>> m = compute_metrics("binary", np.array([0.1, 0.8, 0.6]), np.array([0, 1, 0]))
        >>> m["auc"], round(m["accuracy"], 3)
        (1.0, 0.667)
    """
    from sklearn.metrics import log_loss, roc_auc_score

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ")
    if not len(s):
        raise ValueError("cannot compute metrics on an empty evaluation set")
    out: dict[str, float] = {"rows": float(len(s))}
    if task == "binary":
        out["logloss"] = float(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]))
        out["auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
        out["accuracy"] = float(np.mean((s >= 0.5) == (y >= 0.5)))
        out["positive_rate"] = float(y.mean())
    elif task == "regression":
        out["rmse"] = float(np.sqrt(np.mean((s - y) ** 2)))
        out["mae"] = float(np.mean(np.abs(s - y)))
    else:
        raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
    return out


# Whether a larger value of each monitored metric is better.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "rmse": False, "mae": False}
