"""TrainConfig: every training option, typed and frozen; saved beside every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossrank.models.config import from_dict, to_dict
from crossrank.train.metrics import HIGHER_IS_BETTER
from crossrank.train.optim import OPTIMIZERS


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run.

    ``weight_decay`` is an L2 on every dense parameter (see
    :func:`~crossrank.train.optim.build_optimizer`). ``monitor`` is the validation metric for
    early stopping and best-weight restore (default: "logloss" for binary tasks, "rmse" for
    regression).
    """

    model: str = "dcn"
    model_config: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 16
    optimizer: str = "adam"
    lr: float = 1e-3
    sparse_lr: float | None = None
    weight_decay: float = 0.0
    batch_size: int = 512
    epochs: int = 10
    schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    patience: int = 2
    monitor: str | None = None
    valid_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("lr", "batch_size", "epochs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        if self.monitor is not None and self.monitor not in HIGHER_IS_BETTER:
            raise ValueError(f"monitor must be one of {sorted(HIGHER_IS_BETTER)}, "
                             f"got {self.monitor!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data)
