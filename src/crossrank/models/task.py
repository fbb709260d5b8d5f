"""The task (binary or regression): how logits become a loss and a prediction.

A model's task is set once, by the schema's task, and given to the model as ``task=``; it is
not a model option.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional

from crossrank.errors import ConfigError

TASKS = ("binary", "regression")


def check_task(task: str) -> str:
    """``task`` itself when it is one of :data:`TASKS`, else a ConfigError naming it.

    Example:
        >>> check_task("regression")
        'regression'
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    return task


def loss_fn(task: str, logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean log-loss (``task="binary"``, labels in {0, 1}) or MSE (``"regression"``).

    With row ``weights`` (>= 0) the weighted mean ``sum_i w_i l_i / sum_i w_i``: a row of
    weight 2 counts as that row twice, weight 0 not at all; 0 when every weight is 0.

    Shape:
        logits, labels, weights: (B,) -> scalar.

    Example:
        >>> round(float(loss_fn("binary", torch.zeros(2), torch.tensor([0.0, 1.0]))), 4)
        0.6931
        >>> float(loss_fn("regression", torch.zeros(2), torch.tensor([1.0, 2.0]),
        ...               torch.tensor([3.0, 1.0])))
        1.75
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    target = labels.to(logits.dtype)
    if weights is None:
        if check_task(task) == "binary":
            return functional.binary_cross_entropy_with_logits(logits, target)
        return functional.mse_loss(logits, target)
    if weights.shape != logits.shape:
        raise ValueError(f"weights {tuple(weights.shape)} and logits {tuple(logits.shape)} "
                         "differ")
    if check_task(task) == "binary":
        per_row = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per_row = functional.mse_loss(logits, target, reduction="none")
    w = weights.to(logits.dtype)
    total = w.sum()
    # sum(w l) / sum(w), and 0 (with a zero gradient) when the batch weighs nothing
    return (w * per_row).sum() / torch.where(total > 0, total, torch.ones_like(total))


def predict(task: str, logits: Tensor) -> Tensor:
    """Click probability (sigmoid) for "binary", the value itself for "regression".

    Example:
        >>> predict("binary", torch.zeros(1)).tolist(), predict("regression", torch.ones(1)).tolist()
        ([0.5], [1.0])
    """
    if check_task(task) == "binary":
        return torch.sigmoid(logits)
    return logits


def multitask_loss(tasks: Sequence[str], logits: Tensor, labels: Tensor,
                   weights: Tensor | None = None,
                   task_weights: Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """The weighted sum of the tasks' masked losses, and each task's loss.

    ``total = sum_t a_t L_t`` with ``L_t = sum_i w_i m_it l_it / sum_i w_i m_it`` (0 when
    the batch holds no row of task t): ``l_it`` is task t's log-loss or squared error on row
    i, ``m_it`` is 0 where row i's label for task t is missing (NaN) and 1 elsewhere, ``w_i``
    the row weight (1 without weights) and ``a_t`` the task weight (1 without).

    Shape:
        logits, labels: (B, T); weights: (B,) or None -> total: scalar, per_task: (T,).

    Example:
        >>> y = torch.tensor([[1.0, float("nan")], [0.0, 2.0]])
        >>> total, per_task = multitask_loss(["binary", "regression"], torch.zeros(2, 2), y,
        ...                                  task_weights=[1.0, 0.5])
        >>> [round(v, 4) for v in per_task.tolist()], round(float(total), 4)
        ([0.6931, 4.0], 2.6931)
    """
    t = len(tasks)
    if logits.dim() != 2 or logits.shape[1] != t or labels.shape != logits.shape:
        raise ValueError(f"logits and labels must both be (B, {t}) for {t} tasks, got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if weights is not None and weights.shape != logits.shape[:1]:
        raise ValueError(f"weights {tuple(weights.shape)} must be ({logits.shape[0]},)")
    present = ~torch.isnan(labels)  # (B, T)
    target = torch.where(present, labels, torch.zeros_like(labels)).to(logits.dtype)
    losses = []
    for k, task in enumerate(tasks):
        if check_task(task) == "binary":
            per_row = functional.binary_cross_entropy_with_logits(logits[:, k], target[:, k],
                                                                  reduction="none")
        else:
            per_row = functional.mse_loss(logits[:, k], target[:, k], reduction="none")
        w = present[:, k].to(logits.dtype)  # (B,)
        if weights is not None:
            w = w * weights.to(logits.dtype)
        total = w.sum()
        losses.append((w * per_row).sum() / torch.where(total > 0, total, torch.ones_like(total)))
    per_task = torch.stack(losses)  # (T,)
    if task_weights is None:
        return per_task.sum(), per_task
    if len(task_weights) != t:
        raise ValueError(f"task_weights needs {t} values, got {list(task_weights)}")
    a = torch.tensor([float(x) for x in task_weights], dtype=per_task.dtype,
                     device=per_task.device)
    return (a * per_task).sum(), per_task


def predict_tasks(tasks: Sequence[str], logits: Tensor) -> Tensor:
    """:func:`predict` of each task's logit column (one task: of the (B,) logits).

    Shape:
        logits (B,) for one task, (B, T) for T -> the same shape.

    Example:
        >>> predict_tasks(["binary", "regression"], torch.tensor([[0.0, 3.0]])).tolist()
        [[0.5, 3.0]]
    """
    if len(tasks) == 1:
        return predict(tasks[0], logits)
    return torch.stack([predict(task, logits[:, k]) for k, task in enumerate(tasks)], dim=1)
