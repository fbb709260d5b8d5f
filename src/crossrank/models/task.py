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


def loss_fn(task: str, logits: Tensor, labels: Tensor) -> Tensor:
    """Mean log-loss (``task="binary"``, labels in {0, 1}) or MSE (``"regression"``).

    Shape:
        logits, labels: (B,) -> scalar.

    Example:
        >>> round(float(loss_fn("binary", torch.zeros(2), torch.tensor([0.0, 1.0]))), 4)
        0.6931
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    if check_task(task) == "binary":
        return functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return functional.mse_loss(logits, labels.to(logits.dtype))


def predict(task: str, logits: Tensor) -> Tensor:
    """Click probability (sigmoid) for "binary", the value itself for "regression".

    Example:
        >>> predict("binary", torch.zeros(1)).tolist(), predict("regression", torch.ones(1)).tolist()
        ([0.5], [1.0])
    """
    if check_task(task) == "binary":
        return torch.sigmoid(logits)
    return logits
