"""Runs that go wrong without a bug: the checks the Trainer makes after every epoch and at the
end of a run, and what it says about them.

A NaN or infinite loss or gradient is caught per update by
:class:`~crossrank.train.step.TrainStep`; what is checked here is coarser. After each epoch:
weights that stopped being finite (an update too large for floats, with every loss and
gradient finite) stop the run, and a model no better than a constant is flagged. At the end:
a run whose monitored value was never finite, whose best epoch is its first, or that skipped
updates. A learning rate far too high shows in one of them: binary DCN at lr 3 blows up to a
finite training loss of ~1e15 and ends with a log-loss worse than predicting the positive
rate, or with the same score for every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crossrank.errors import DivergedError
from crossrank.train.config import MAX_SKIPPED_FRACTION, TrainConfig


class SkipBudget:
    """What an epoch does with an update whose loss or gradient is NaN or infinite (never
    applied, see :class:`~crossrank.train.step.TrainStep`): with ``on_nonfinite="stop"`` it
    stops the run; with ``"skip"`` it is counted, up to ``MAX_SKIPPED_FRACTION`` of the
    epoch's updates (at least one): one more stops the run all the same."""

    def __init__(self, config: TrainConfig, *, epoch: int, steps_per_epoch: int) -> None:
        self.config, self.epoch, self.steps = config, epoch, steps_per_epoch
        self.limit = max(1, int(MAX_SKIPPED_FRACTION * steps_per_epoch))
        self.skipped = 0

    def spend(self, why: str, *, update: int) -> None:
        """Count the non-finite update ``update`` (from 1), or raise :class:`DivergedError`."""
        where = f"training diverged in epoch {self.epoch + 1}, update {update} of {self.steps}"
        lr = f"lower --lr ({self.config.lr:g} now)"
        if self.config.on_nonfinite == "stop":
            raise DivergedError(f"{where}: {why}; stopped without applying it ({lr}, clip with "
                                "--grad-clip, or skip such batches: --on-nonfinite skip)")
        self.skipped += 1
        if self.skipped > self.limit:
            raise DivergedError(
                f"{where}: {why}; {self.skipped} of its updates so far were skipped for a NaN "
                f"or infinite loss or gradient, more than {self.limit} "
                f"({MAX_SKIPPED_FRACTION:.0%} of {self.steps}); stopped ({lr} or clip with "
                "--grad-clip)")

    def nothing_trained(self) -> DivergedError:
        """The error of an epoch whose every update was skipped."""
        return DivergedError(f"training diverged in epoch {self.epoch + 1}: all its "
                             f"{self.skipped} updates were skipped (NaN or infinite loss or "
                             f"gradient); lower --lr ({self.config.lr:g} now)")


def standing(out_dir: Path | None, best_epoch: int, *, keep_best: bool) -> str:
    """Where a stopped run leaves its model, for the end of the error's message."""
    if out_dir is None:
        return (f"the model holds epoch {best_epoch}'s weights, the best before"
                if best_epoch >= 1 and keep_best else
                "the model holds the weights from before that update")
    if best_epoch >= 1:
        return f"{out_dir / 'model.safetensors'} holds epoch {best_epoch}'s weights, the best before"
    return "no model was written"


def check_weights(model: nn.Module, *, epoch: int, lr: float | None) -> None:
    """Raise :class:`DivergedError` if a weight or buffer of ``model`` holds a NaN or an
    infinity after epoch ``epoch`` (from 0): nothing non-finite is ever checkpointed. One
    pass over the weights and one host sync."""
    tensors = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    if not tensors:
        return
    flags = torch.stack([torch.isfinite(v).all() for v in tensors.values()])
    if bool(flags.all()):
        return
    bad = [k for k, ok in zip(tensors, flags.tolist()) if not ok]
    shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
    raise DivergedError(
        f"training diverged in epoch {epoch + 1}: after its updates {len(bad)} weight "
        f"tensor(s) hold NaN or infinite values ({shown}), though every loss and gradient "
        "was finite; " + (f"lower --lr ({lr:g} now)" if lr is not None else
                          "the linear model's solver failed: report it, with the data"))


def quality_flags(task: str, scores: np.ndarray, labels: np.ndarray,
                  metrics: dict[str, float], weights: np.ndarray | None = None
                  ) -> dict[str, bool]:
    """Flags of a model no better than a constant on the validation rows, for the epoch's
    record: ``constant_scores`` (every score the same: it ranks nothing) and
    ``worse_than_constant`` (a log-loss, or RMSE, worse than that of predicting the rows'
    positive rate, or mean label, for every row; weighted by ``weights`` when given).
    Shape: scores, labels, weights (R,).

    Example:
        >>> quality_flags("regression", np.array([5.0, 5.0]), np.array([0.0, 1.0]),
        ...               {"rmse": 4.5})
        {'constant_scores': True, 'worse_than_constant': True}
    """
    flags = {}
    if len(scores) > 1 and scores.min() == scores.max():
        flags["constant_scores"] = True
    if task == "binary":
        p = float(np.average(labels, weights=weights))
        worse = 0 < p < 1 and not metrics["logloss"] <= -(p * math.log(p)
                                                          + (1 - p) * math.log(1 - p))
    else:
        mean = np.average(labels, weights=weights)
        spread = math.sqrt(float(np.average((labels - mean) ** 2, weights=weights)))
        worse = spread > 0 and not metrics["rmse"] <= spread
    if worse:
        flags["worse_than_constant"] = True
    return flags


def no_finite_value(history: list[dict[str, Any]], monitor: str,
                    has_valid: bool) -> DivergedError:
    """The error of a run in which no epoch's monitored value was finite (so no epoch could
    be chosen, and no model was written)."""
    shown = [h["valid"][monitor] if has_valid else h["train_loss"] for h in history[-5:]]
    values = ("..., " if len(history) > 5 else "") + ", ".join(f"{v:.5g}" for v in shown)
    one_label = has_valid and monitor == "auc" and all(
        h["valid"]["positive_rate"] in (0.0, 1.0) for h in history)
    why = ("the validation rows all have one label, and AUC needs both: monitor logloss "
           "instead" if one_label else "the model's predictions are NaN or infinite there")
    what = f"validation {monitor}" if has_valid else "training loss"
    return DivergedError(f"no epoch's {what} was finite ({values}): {why}; no model was "
                         "written")


@dataclass
class RunHealth:
    """What the end of a run says about it (see :class:`~crossrank.train.loop.FitResult`)."""

    never_improved: bool = False
    no_better_than_constant: bool = False
    skipped_steps: int = 0
    notes: list[str] = field(default_factory=list)  # lines to print


def run_health(history: list[dict[str, Any]], best_epoch: int, *, monitor: str,
               has_valid: bool, task: str, lr: float | None,
               steps_per_epoch: int) -> RunHealth:
    """The end-of-run flags and lines of a run with these epoch records (``lr`` None: a
    linear model's path, whose epochs are penalties, not updates)."""
    health = RunHealth()
    health.never_improved = best_epoch == 1 and len(history) > 1
    if health.never_improved:
        first = history[0]["valid"][monitor] if has_valid else history[0]["train_loss"]
        what = f"validation {monitor}" if has_valid else "training loss"
        why = ("a learning rate too high or too low?" if lr is not None else "the path's "
               "strongest penalty was best: the data supports little more than the intercept")
        health.notes.append(f"the {what} never improved on epoch 1's {first:.5g} in "
                            f"{len(history)} epochs; the model is epoch 1's ({why})")
    final = next((h for h in history if h["epoch"] == best_epoch), {})
    if final.get("constant_scores") or final.get("worse_than_constant"):
        health.no_better_than_constant = True
        key, constant = ("logloss", "positive rate") if task == "binary" else ("rmse",
                                                                            "mean label")
        what = ("gives every validation row the same score" if final.get("constant_scores")
                else f"has a validation {key} ({final['valid'][key]:.5g}) worse than a "
                f"constant prediction of the rows' {constant}")
        why = (f"Training diverged or stalled (lr {lr:g}: far too high, or too low?)"
               if lr is not None else "The features carry no signal the validation rows "
               "confirm, or too few rows validate")
        health.notes.append(f"warning: the model (epoch {best_epoch}'s) {what}: it is no "
                            f"better than a constant. {why}")
    health.skipped_steps = sum(h.get("skipped_steps", 0) for h in history)
    if health.skipped_steps:
        health.notes.append(
            f"skipped {health.skipped_steps} of {len(history) * steps_per_epoch} updates for a "
            "NaN or infinite loss or gradient (per epoch: skipped_steps in metrics.jsonl)")
    return health


def epoch_line(record: dict[str, Any]) -> str:
    """The line printed for an epoch's record (as in ``metrics.jsonl``)."""
    parts = [f"epoch {record['epoch']}", f"train loss {record['train_loss']:.5f}",
             f"{record['samples_per_s']:,.0f} samples/s"]
    if "path_c" in record:  # the linear family: the point of its regularization path
        parts[0] += f" (C {record['path_c']:.4g}" + ("" if record.get("path_converged", True)
                                                      else f", not converged in "
                                                      f"{record['path_iterations']} "
                                                      "iterations: model.max_iter") + ")"
    for key, value in record.get("valid", {}).items():
        if key.rpartition("/")[2] != "rows":
            parts.append(f"valid {key} {value:.5f}")
    if record.get("skipped_steps"):
        parts.append(f"skipped {record['skipped_steps']} updates (non-finite)")
    if record.get("constant_scores"):
        parts.append("every validation score the same")
    elif record.get("worse_than_constant"):
        parts.append("worse than a constant")
    return " | ".join(parts)
