"""Optimizers: dense parameters with Adam/Adagrad/SGD, embedding tables with sparse updates.

A sparse embedding gradient touches only the rows a batch looked up; ``torch.optim.Adam`` on
a dense gradient would read and write the whole table every step (the main reason slow CPU
trainers are slow), so sparse tables get Adam's sparse variant (``SparseAdam``'s update), or
Adagrad/SGD, applied to the touched rows only
(:mod:`crossrank.train.rowwise_optim`: torch's arithmetic, without its passes over sparse
tensors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from crossrank.distributed.sparse_gradients import sparse_tables
from crossrank.errors import ConfigError
from crossrank.models.base import RankingModel
from crossrank.train.plain_optim import SGD, Adagrad, Adam
from crossrank.train.rowwise_optim import RowwiseAdagrad, RowwiseSGD, RowwiseSparseAdam

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
                    sparse_lr: float | None = None, weight_decay: float = 0.0,
                    lr_scales: Mapping[str, float] | None = None) -> MultiOptimizer:
    """Optimizer(s) for ``model``: sparse-gradient embeddings are split off automatically.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient of every dense parameter (torch's
    coupled L2), embedding tables without sparse gradients included. It is the regularizer that
    pins the network's scale: an L2 on the embeddings alone can be dodged by shrinking them and
    growing the next layer. Sparse tables are not decayed (that would touch every row every
    step); their L2 is the embeddings' row penalty (``embedding_l2``).

    ``lr_scales`` multiplies the learning rate (``lr``, or ``sparse_lr`` for sparse tables) of
    every parameter of a named part of the model
    (:meth:`~crossrank.models.RankingModel.named_parts`), e.g. ``{"first_order": 30}``: the
    first-order weights start at zero and must travel far. A name the model has no part for
    is an error naming the parts it has.

    Example:
        >>> opt = build_optimizer(nn.Linear(2, 1), "adam", 0.01)
        >>> len(opt.optimizers)
        1
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    sparse_ids = {id(weight) for _, weight in sparse_tables(model)}
    params = [p for p in model.parameters() if p.requires_grad]
    scales = part_lr_scales(model, lr_scales or {})
    dense_groups = _groups([p for p in params if id(p) not in sparse_ids], scales, lr)
    sparse_groups = _groups([p for p in params if id(p) in sparse_ids], scales, sparse_lr or lr)
    # torch's optimizers, without their 1.3-2 s import of torch._dynamo (train.plain_optim)
    dense_cls = {"adam": Adam, "adagrad": Adagrad, "sgd": SGD}
    sparse_cls = {"adam": RowwiseSparseAdam, "adagrad": RowwiseAdagrad, "sgd": RowwiseSGD}
    optimizers: list[torch.optim.Optimizer] = []
    if dense_groups:
        optimizers.append(dense_cls[name](dense_groups, lr=lr, weight_decay=weight_decay))
    if sparse_groups:
        optimizers.append(sparse_cls[name](sparse_groups, lr=sparse_lr or lr))
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return MultiOptimizer(optimizers)


def part_lr_scales(model: nn.Module, lr_scales: Mapping[str, float]) -> dict[int, float]:
    """Per-parameter learning-rate multipliers from multipliers per named part, keyed by
    ``id(parameter)``; unknown part names and non-positive scales raise ConfigError.

    Example:
        >>> from crossrank.models import FeatureSchema, build_model
        >>> m = build_model("dnn", FeatureSchema(dense=("a",)), {"terms.first_order": True})
        >>> sorted(part_lr_scales(m, {"first_order": 30.0}).values())
        [30.0]
        >>> part_lr_scales(m, {"fm": 2.0})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: lr_scales names part 'fm', ...; its parts: deep, output, first_order
    """
    if not lr_scales:
        return {}
    parts = model.named_parts() if isinstance(model, RankingModel) else {}
    kind = f"this {model.model_name} model" if isinstance(model, RankingModel) else \
        f"a bare {type(model).__name__} (not a crossrank model)"
    scales: dict[int, float] = {}
    for part, scale in lr_scales.items():
        if part not in parts:
            raise ConfigError(f"lr_scales names part {part!r}, which {kind} does not have; "
                              f"its parts: {', '.join(parts) or 'none'}")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise ConfigError(f"lr_scales.{part} must be a positive number, got {scale!r}")
        for p in parts[part].parameters():
            scales[id(p)] = float(scale)
    return scales


def _groups(params: list[nn.Parameter], scales: dict[int, float], lr: float) -> list[dict]:
    """Parameter groups by learning-rate multiplier, in first-seen order."""
    by_scale: dict[float, list[nn.Parameter]] = {}
    for p in params:
        by_scale.setdefault(scales.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in by_scale.items()]


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
