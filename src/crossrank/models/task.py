"""The task (binary or regression): how logits become a loss and a prediction.

A model's task is set once, by the schema's task, and given to the model as ``task=``; it is
not a model option.
"""

from __future__ import annotations

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
