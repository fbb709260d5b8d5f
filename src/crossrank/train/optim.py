"""Optimizers: dense parameters with Adam/Adagrad/SGD, embedding tables with sparse updates.

A sparse embedding gradient touches only the rows a batch looked up; ``torch.optim.Adam`` on
a dense gradient would read and write the whole table every step (the main reason slow CPU
trainers are slow), so sparse tables get ``SparseAdam`` (for "adam") or a sparse-aware
``Adagrad``/``SGD``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

OPTIMIZERS = ("adam", "adagrad", "sgd")


class MultiOptimizer:
    """Steps several optimizers as one (dense parameters and sparse tables)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def set_lr_factor(self, factor: float) -> None:
        """Scale every group's learning rate to ``factor`` times its initial value."""
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def state_dict(self) -> list[dict]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        if len(states) != len(self.optimizers):
            raise ValueError(f"optimizer state has {len(states)} parts, expected "
                             f"{len(self.optimizers)}")
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)


def build_optimizer(model: nn.Module, name: str, lr: float, *,
                    sparse_lr: float | None = None) -> MultiOptimizer:
    """Optimizer(s) for ``model``: sparse-gradient embeddings are split off automatically.

    Example:
        >>> opt = build_optimizer(nn.Linear(2, 1), "adam", 0.01)
        >>> len(opt.optimizers)
        1
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    sparse_params, dense_params = [], []
    sparse_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.sparse:
            sparse_params.append(module.weight)
            sparse_ids.add(id(module.weight))
    dense_params = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = []
    if dense_params:
        if name == "adam":
            optimizers.append(torch.optim.Adam(dense_params, lr=lr))
        elif name == "adagrad":
            optimizers.append(torch.optim.Adagrad(dense_params, lr=lr))
        else:
            optimizers.append(torch.optim.SGD(dense_params, lr=lr))
    if sparse_params:
        slr = sparse_lr or lr
        if name == "adam":
            optimizers.append(torch.optim.SparseAdam(sparse_params, lr=slr))
        elif name == "adagrad":
            optimizers.append(torch.optim.Adagrad(sparse_params, lr=slr))
        else:
            optimizers.append(torch.optim.SGD(sparse_params, lr=slr))
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return MultiOptimizer(optimizers)


def lr_factor(schedule: str, step: int, total_steps: int, *, warmup_steps: int = 0) -> float:
    """Learning-rate multiplier at ``step``: "constant" or "cosine" (to 0 at ``total_steps``),
    after an optional linear warm-up.

    Example:
        >>> lr_factor("cosine", 50, 100)
        0.5
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(max(step - warmup_steps, 0) / max(total_steps - warmup_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr schedule must be 'constant' or 'cosine', got {schedule!r}")
