"""TrainConfig: the training section of a run's configuration, typed and frozen.

Every field is one option of ``crossrank train`` and one key of a config file's
``[training]`` table (see :mod:`crossrank.options`); its default, help and choices are
declared here only. Saved beside every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from crossrank.errors import ConfigError
from crossrank.options import from_dict, option, to_dict
from crossrank.train.metrics import HIGHER_IS_BETTER
from crossrank.train.optim import OPTIMIZERS

SCHEDULES = ("constant", "cosine")
ON_NONFINITE = ("stop", "skip")
PRECISIONS = ("float32", "bf16")
# "skip" stops the run all the same once more than this share of an epoch's updates (and more
# than one) were skipped: a run that skips that often is not training any more.
MAX_SKIPPED_FRACTION = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run (the model's own options live in the model's config).

    Example:
        >>> TrainConfig(lr=3e-4).batch_size
        512
        >>> TrainConfig(lr=-1.0)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: lr must be positive, got -1.0
    """

    optimizer: str = option("adam", help="optimizer (embeddings get its sparse variant when "
                            "sparse_gradients)", choices=OPTIMIZERS)
    lr: float = option(1e-3, help="learning rate")
    sparse_lr: float | None = option(None, help="learning rate of sparse-gradient embedding "
                                     "tables (none: lr)")
    weight_decay: float = option(0.0, help="L2 on every dense parameter (e.g. 3e-4 for "
                                 "MovieLens)")
    lr_scales: dict[str, float] = option(default_factory=dict, help="learning-rate multiplier "
                                         "per model part, e.g. first_order = 30")
    batch_size: int = option(512, help="mini-batch size (global, over all processes)")
    epochs: int = option(30, help="maximum epochs; early stopping on the validation split "
                         "(patience) usually ends a run well before, restoring the best epoch's "
                         "weights (regularized small-data runs took 6-20 epochs, README "
                         "Defaults)")
    schedule: str = option("constant", help="learning-rate schedule", choices=SCHEDULES)
    warmup_steps: int = option(0, help="steps of linear learning-rate warm-up")
    grad_clip: float | None = option(None, help="clip the gradient norm to this (none: no "
                                     "clipping)")
    on_nonfinite: str = option("stop", help="a batch whose loss or gradient is NaN or infinite "
                               "(training diverged): stop with an error, or skip its update "
                               "and count it (skipping more than one update, and more than 1 "
                               "in 100 of an epoch's, stops all the same)", choices=ON_NONFINITE)
    patience: int = option(2, help="epochs without validation improvement before stopping")
    monitor: str | None = option(None, help="validation metric for early stopping: "
                                 f"{', '.join(HIGHER_IS_BETTER)} (none: logloss for binary, "
                                 "rmse for regression); several labels: LABEL/METRIC watches "
                                 "one task (click/auc), METRIC the tasks' mean (none: mean "
                                 "logloss or rmse, or the first label's when the tasks mix)")
    task_weights: tuple[float, ...] = option((), help="several labels: each task's weight in "
                                             "the loss, sum_t a_t L_t, one per label, >= 0 "
                                             "(none: 1 each)")
    valid_fraction: float = option(0.1, help="last fraction of the training rows held out for "
                                   "validation")
    refit: bool = option(True, help="after early stopping on the validation split chose the "
                         "best epoch E, train a fresh model (same seed, same initial weights) "
                         "on all the training rows, the validation rows too, for E epochs and "
                         "save that one; it has no held-out validation metric of its own "
                         "(model.json 'refit' keeps the first pass's); without validation rows "
                         "(valid_fraction 0) there is nothing to refit for and it does nothing "
                         "(default on: better on every data set of the defaults study)")
    refit_max_rows: int | None = option(
        1_000_000, help="refit only when the data has at most this many rows (none: at any "
        "size): a refit trains a second time for the validation split's rows, which matters "
        "on small data and costs hours on large")
    ema_decay: float | None = option(
        None, help="validate, early-stop on and save an exponential moving average of the "
        "weights over the updates, decaying by this per update (e.g. 0.99: about the last "
        "100 updates); 0: no average, the weights as trained; none: by the task, 0.995 for "
        "regression, no average for binary (README Defaults)")
    seed: int = option(0, help="seed (runs are deterministic on the CPU)")
    threads: int | None = option(
        None, help="torch CPU threads (none: measured while training: all cores, half or one, "
                   "whichever trains fastest on the machine's load now; results are the same)")
    device: str = option("cpu", help="cpu, cuda or cuda:N (checked to be available)")
    precision: str = option("float32", help="arithmetic of the training step's matrix products: "
                            "bf16 runs them in bfloat16 (torch.autocast) with float32 weights, "
                            "gradients and optimizer; fast only where the hardware has bf16 "
                            "(AVX512-BF16 or AMX CPUs, recent GPUs)", choices=PRECISIONS)
    progress: bool = option(True, help="show a progress bar")

    def __post_init__(self) -> None:
        limit = self.refit_max_rows
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ConfigError(f"refit_max_rows must be a positive integer or none, got {limit!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.on_nonfinite not in ON_NONFINITE:
            raise ConfigError(f"on_nonfinite must be one of {ON_NONFINITE}, "
                              f"got {self.on_nonfinite!r}")
        _check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("lr", "batch_size", "epochs"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.sparse_lr is not None and not self.sparse_lr > 0:
            raise ConfigError(f"sparse_lr must be positive or none, got {self.sparse_lr!r}")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        if self.monitor is not None and \
                self.monitor.rpartition("/")[2] not in HIGHER_IS_BETTER:
            raise ConfigError(f"monitor must be one of {sorted(HIGHER_IS_BETTER)}, or "
                              f"LABEL/METRIC, got {self.monitor!r}")
        for a in self.task_weights:
            if isinstance(a, bool) or not isinstance(a, int | float) or not a >= 0 \
                    or not math.isfinite(a):
                raise ConfigError(f"task_weights must be finite numbers >= 0, got "
                                  f"{list(self.task_weights)}")
        if self.task_weights and not sum(self.task_weights) > 0:
            raise ConfigError(f"task_weights must not all be 0, got {list(self.task_weights)}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive or none, got {self.grad_clip!r}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1) (0: no average) or none (by the "
                              f"task), got {self.ema_decay!r}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or none), got {self.threads!r}")
        for part, scale in self.lr_scales.items():
            if not scale > 0:
                raise ConfigError(f"lr_scales.{part} must be positive, got {scale!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data, where="training.")


def _check_device(device: str) -> None:
    """``device`` names a device this process can use: caught before any work is done, not as
    torch's assertion from the first tensor moved there."""
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from err
    if where.type == "cpu":
        return
    if where.type == "mps":  # Apple GPUs: not one of the documented devices, but it ran before
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r} is not available on this machine")
        return
    if where.type != "cuda":
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
               else "no CUDA device is visible to this process")
        raise ConfigError(f"device {device!r} is not available: {why}; use --device cpu")
    if where.index is not None and where.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} is not available: this process sees "
                          f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                          f"cuda:{torch.cuda.device_count() - 1}")
