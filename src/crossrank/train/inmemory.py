"""Fit a model on tensors held in memory: the small experiments' loop (the demo, tests)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from crossrank.models.base import RankingModel
from crossrank.models.heads import loss_fn
from crossrank.train.optim import build_optimizer, lr_factor


@dataclass(frozen=True)
class InMemoryFitConfig:
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 1000
    schedule: str = "constant"
    seed: int = 0


def fit_tensors(model: RankingModel, dense: Tensor, labels: Tensor, *,
                sparse: Tensor | None = None,
                config: InMemoryFitConfig = InMemoryFitConfig()) -> list[float]:
    """Train ``model`` with mini-batches drawn from in-memory tensors; returns epoch losses.

    Shape:
        dense: (R, n_dense); sparse: (R, F) or None; labels: (R,).

    Example:
        >>> from crossrank.models import DCN, CrossConfig, DCNConfig, FeatureSchema
        >>> m = DCN(FeatureSchema(dense=("x",)), DCNConfig(structure="cross_only",
        ...         cross=CrossConfig(num_layers=1)), task="regression")
        >>> x = torch.rand(64, 1)
        >>> losses = fit_tensors(m, x, 3 * x[:, 0] ** 2,
        ...                      config=InMemoryFitConfig(lr=0.1, epochs=30, batch_size=16))
        >>> losses[-1] < losses[0]
        True
    """
    generator = torch.Generator().manual_seed(config.seed)
    opt = build_optimizer(model, config.optimizer, config.lr)
    rows = dense.shape[0]
    steps_per_epoch = (rows + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    history, step = [], 0
    model.train()
    for _ in range(config.epochs):
        perm = torch.randperm(rows, generator=generator)
        running, seen = 0.0, 0
        for start in range(0, rows, config.batch_size):
            idx = perm[start:start + config.batch_size]
            opt.set_lr_factor(lr_factor(config.schedule, step, total))
            logits = model(dense[idx], None if sparse is None else sparse[idx])
            loss = loss_fn(model.task, logits, labels[idx]) + model.regularization()
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            step += 1
        history.append(running / seen)
    model.eval()
    return history
