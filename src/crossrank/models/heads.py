"""Task heads: how logits become a loss and a prediction."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional


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
    if task == "binary":
        return functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    if task == "regression":
        return functional.mse_loss(logits, labels.to(logits.dtype))
    raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")


def predict(task: str, logits: Tensor) -> Tensor:
    """Click probability (sigmoid) for "binary", the value itself for "regression"."""
    if task == "binary":
        return torch.sigmoid(logits)
    if task == "regression":
        return logits
    raise ValueError(f"task must be 'binary' or 'regression', got {task!r}")
