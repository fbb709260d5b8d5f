"""Metrics and the early-stopping monitor of a multi-task model (several labels).

Each task's metrics are :func:`~crossrank.train.metrics.compute_metrics` on the rows whose
label for that task is present (a missing label, NaN, is left out, as in the masked loss),
named ``LABEL/METRIC`` (``click/auc``, ``conversion/rows``). ``mean/METRIC`` is the mean of
that metric over the tasks that report it finite (``mean/auc``: the binary tasks' AUCs).

The monitor (``training.monitor``) is ``LABEL/METRIC`` (one task's metric) or ``METRIC``
(``mean/METRIC``); none: ``mean/logloss`` (``mean/rmse``) when every task is binary
(regression), else the first label's default metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossrank.errors import ConfigError
from crossrank.train.metrics import HIGHER_IS_BETTER, TASK_METRICS, compute_metrics, default_monitor


def multitask_metrics(tasks: Sequence[str], names: Sequence[str], scores: np.ndarray,
                      labels: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Every task's metrics on its labelled rows, and their means (see the module doc).

    Shape:
        scores, labels: (R, T) float64 (NaN labels: missing); weights: (R,) or None.

    Example:
        >>> y = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]], dtype=float)
        >>> s = np.array([[0.9, 0.2], [0.1, 0.5], [0.8, 0.7], [0.3, 0.4]])
        >>> m = multitask_metrics(["binary", "binary"], ["click", "buy"], s, y)
        >>> m["click/auc"], m["buy/auc"], m["buy/rows"], m["mean/auc"]
        (1.0, 1.0, 3.0, 1.0)
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if s.ndim != 2 or s.shape != y.shape or s.shape[1] != len(tasks) or len(names) != len(tasks):
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be (R, {len(tasks)}) "
                         f"for tasks {list(names)}")
    out: dict[str, float] = {"rows": float(len(s))}
    for k, (task, name) in enumerate(zip(tasks, names)):
        present = ~np.isnan(y[:, k])
        if not present.any():
            out[f"{name}/rows"] = 0.0
            continue
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[present]
        for key, value in compute_metrics(task, s[present, k], y[present, k], w).items():
            out[f"{name}/{key}"] = value
    for metric in HIGHER_IS_BETTER:
        values = [out[f"{n}/{metric}"] for n in names if f"{n}/{metric}" in out]
        finite = [v for v in values if np.isfinite(v)]
        if values:
            out[f"mean/{metric}"] = float(np.mean(finite)) if finite else float("nan")
    return out


def resolve_monitor(monitor: str | None, tasks: Sequence[str],
                    names: Sequence[str] | None = None) -> str:
    """The key of the validation metric early stopping watches (see the module doc); one
    task: the metric itself. A metric no task reports, or an unknown label, is a ConfigError.

    Example:
        >>> resolve_monitor(None, ["binary", "binary"], ["click", "buy"])
        'mean/logloss'
        >>> resolve_monitor("buy/auc", ["binary", "binary"], ["click", "buy"])
        'buy/auc'
    """
    if len(tasks) == 1:
        task = tasks[0]
        chosen = monitor or default_monitor(task)
        if chosen not in TASK_METRICS[task]:
            raise ConfigError(f"training.monitor {chosen!r} is not a {task} metric (choose one "
                              f"of {', '.join(TASK_METRICS[task])})")
        return chosen
    names = list(names) if names is not None else [f"task{k}" for k in range(len(tasks))]
    if monitor is None:
        kinds = set(tasks)
        return (f"mean/{default_monitor(tasks[0])}" if len(kinds) == 1
                else f"{names[0]}/{default_monitor(tasks[0])}")
    label, slash, metric = monitor.rpartition("/")
    if slash and label != "mean":
        if label not in names:
            raise ConfigError(f"training.monitor {monitor!r} names no label (labels: "
                              f"{', '.join(names)})")
        task = tasks[names.index(label)]
        if metric not in TASK_METRICS[task]:
            raise ConfigError(f"training.monitor {monitor!r}: {metric!r} is not a {task} "
                              f"metric (choose one of {', '.join(TASK_METRICS[task])})")
        return monitor
    if not any(metric in TASK_METRICS[t] for t in tasks):
        raise ConfigError(f"training.monitor {monitor!r} is reported by no task (tasks: "
                          f"{', '.join(tasks)})")
    return f"mean/{metric}"


def higher_is_better(monitor: str) -> bool:
    """Whether a larger value of the monitored key (``auc``, ``click/auc``) is better.

    Example:
        >>> higher_is_better("mean/auc"), higher_is_better("click/logloss")
        (True, False)
    """
    return HIGHER_IS_BETTER[monitor.rpartition("/")[2]]


def check_task_weights(task_weights: Sequence[float], num_tasks: int) -> None:
    """``training.task_weights`` fits a model of ``num_tasks`` tasks: one weight per label
    (or none given), and none for a single task.

    Example:
        >>> check_task_weights((1.0, 0.5, 2.0), 2)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: training.task_weights has 3 values for 2 labels: give one per label
    """
    if not task_weights:
        return
    if num_tasks == 1:
        raise ConfigError(f"training.task_weights {list(task_weights)} is for several labels "
                          "(--label a,b); this model has one")
    if len(task_weights) != num_tasks:
        raise ConfigError(f"training.task_weights has {len(task_weights)} values for "
                          f"{num_tasks} labels: give one per label")
