"""Typed, frozen model configs; unknown keys are errors, never silently ignored."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

TASKS = ("binary", "regression")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys; lists become tuples.

    Example:
        >>> from_dict(DNNConfig, {"deep_layers": [8]}).deep_layers
        (8,)
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} config must be a dict, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; valid: {sorted(names)}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**clean)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


@dataclass(frozen=True)
class DCNConfig:
    """Deep & Cross Network (DCN v1, DCN-V2 full or low rank, DCN-Mix).

    ``structure``: "stacked" (cross then deep), "parallel" (cross and deep both on x0,
    concatenated, then the combination layer: the original DCN design) or "cross_only".
    ``norm``: None, "layer" or "batch" normalization in the deep network's hidden layers.
    ``first_order``: add the linear ("wide") term of :class:`~crossrank.layers.FirstOrder`,
    with its own L2 and learning-rate multiplier.
    ``fm_dim``: when > 0, add a factorization machine's pairwise term with its own factors of
    this length and its own per-occurrence L2 ``fm_l2``
    (:class:`~crossrank.layers.FactorizationMachine`; needs two or more categorical fields).
    """

    structure: str = "stacked"
    num_cross_layers: int = 3
    cross_kind: str = "matrix"
    rank: int | None = None
    num_experts: int = 1
    diag_scale: float = 0.0
    cross_activation: str | None = None
    use_bias: bool = True
    deep_layers: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    norm: str | None = None
    cross_l2: float = 0.0
    embedding_l2: float = 0.0
    first_order: bool = False
    first_order_l2: float = 0.0
    first_order_lr_scale: float = 1.0
    fm_dim: int = 0
    fm_l2: float = 0.0
    sparse_gradients: bool = False
    backend: str = "auto"
    task: str = "binary"

    def __post_init__(self) -> None:
        _check_task(self.task)
        if isinstance(self.fm_dim, bool) or not isinstance(self.fm_dim, int) or self.fm_dim < 0:
            raise ValueError(f"fm_dim must be an integer >= 0 (0: no factorization machine), "
                             f"got {self.fm_dim!r}")
        if self.structure not in ("stacked", "parallel", "cross_only"):
            raise ValueError("structure must be 'stacked', 'parallel' or 'cross_only', "
                             f"got {self.structure!r}")


@dataclass(frozen=True)
class DLRMConfig:
    """DLRM: bottom MLP over dense features to D, embeddings, an interaction, top MLP.

    ``bottom_layers`` must end in the embedding dim D; ``top_layers`` are the hidden sizes of
    the top MLP before its single logit output. ``interaction``: "dot", "dcn" or "projection".
    """

    bottom_layers: tuple[int, ...] = (512, 256, 16)
    top_layers: tuple[int, ...] = (512, 256)
    interaction: str = "dot"
    self_interaction: bool = False
    dcn_num_layers: int = 3
    dcn_rank: int | None = 64
    dcn_diag_scale: float = 0.0
    projection_branch1: tuple[int, ...] = (256, 64)
    projection_branch2: tuple[int, ...] = (256, 64)
    cross_l2: float = 0.0
    embedding_l2: float = 0.0
    sparse_gradients: bool = False
    backend: str = "auto"
    task: str = "binary"

    def __post_init__(self) -> None:
        _check_task(self.task)
        if self.interaction not in ("dot", "dcn", "projection"):
            raise ValueError("interaction must be 'dot', 'dcn' or 'projection', "
                             f"got {self.interaction!r}")


@dataclass(frozen=True)
class DNNConfig:
    """Plain deep network over ``[dense, embeddings]``: the baseline without crosses."""

    deep_layers: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    norm: str | None = None
    embedding_l2: float = 0.0
    sparse_gradients: bool = False
    task: str = "binary"

    def __post_init__(self) -> None:
        _check_task(self.task)
