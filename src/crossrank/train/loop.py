"""The training loop: mini-batches from a source, validation, early stopping, checkpoints
and resume; data-parallel over processes when torch.distributed is initialized (see
:mod:`crossrank.distributed`). Every update is a :class:`~crossrank.train.step.TrainStep`.

The loop owns the optimizer, seeding and the device; the model only computes logits.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crossrank.distributed import (
    all_reduce_sum,
    broadcast_float,
    broadcast_module,
    current_context,
)
from crossrank.distributed.sparse_gradients import (
    SparseGradientAverager,
    leave_out_of_ddp,
    sparse_tables,
)
from crossrank.errors import DivergedError
from crossrank.models.base import RankingModel
from crossrank.safe_io import atomic_link
from crossrank.train import health
from crossrank.train.averaging import WeightAverage, resolve_ema_decay
from crossrank.train.background import in_background
from crossrank.train.batch_source import (  # noqa: F401 (importable from here as before)
    Batch,
    BatchSource,
    ShardedBatchSource,
    iter_shares,
    share_weight,
)
from crossrank.train.checkpoint import load_tensors, save_model, save_tensors, save_training_state
from crossrank.train.config import TrainConfig
from crossrank.train.linear_path import check_path_training, path_epoch
from crossrank.train.multitask_metrics import check_task_weights, higher_is_better, resolve_monitor
from crossrank.train.resume import read_resume_state
from crossrank.train.scoring import (  # noqa: F401 (evaluate: importable from here)
    Scored,
    evaluate,
    model_metrics,
    score,
)
from crossrank.train.step import NonFiniteUpdate, TrainStep


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did.

    Attributes:
        best_epoch: the epoch (from 1) whose weights the model ends with; -1 when no epoch ran.
        best_metrics: its validation metrics ({} without a validation set); history: one
            record per epoch, as in ``metrics.jsonl``; stopped_early: patience ran out.
        never_improved: more than one epoch and none beat epoch 1's (also in ``model.json``);
        skipped_steps, no_better_than_constant: see :mod:`crossrank.train.health`.
        refit: the saved model is not this run's best epoch but a fresh one trained on every
            training row for ``best_epoch`` epochs (``training.refit``): ``best_metrics`` are
            then the first pass's validation metrics, not the saved model's.
    """

    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    never_improved: bool = False
    skipped_steps: int = 0
    no_better_than_constant: bool = False
    refit: bool = False


class Trainer:
    """Fit ``model`` on ``train`` with validation on ``valid``; files go to ``out_dir``.

    Each epoch: shuffled mini-batches (seed + epoch, so an epoch is reproducible on resume),
    each one update by a :class:`~crossrank.train.step.TrainStep` (task loss + the model's
    regularization, optional gradient clipping and LR schedule; the epoch's reported
    ``train_loss`` is the mean task loss, without the regularizer); then validation metrics on
    the whole validation set, and with an ``out_dir``: a line in ``metrics.jsonl``, a
    checkpoint of the latest state (for ``--resume``) and of the best weights
    (``model.safetensors``). Training stops after ``patience`` epochs without improvement of
    ``config.monitor`` (of the training loss when there is no validation set); the best
    weights are restored into ``model`` at the end. With ``config.ema_decay`` (by default for
    regression) the moving average of the weights (:mod:`crossrank.train.averaging`) takes
    their place in validation, early stopping and ``model.safetensors`` (``keep_best=False``:
    the model ends with it); the live weights train on; the average is checkpointed.

    A run that diverges stops and says so (:class:`~crossrank.errors.DivergedError`, naming the
    epoch and update; :mod:`crossrank.train.health`): a non-finite update is never applied, a
    NaN metric is never an improvement, ``model.safetensors`` only ever holds finite weights.

    When torch.distributed is initialized with W > 1 ranks, the model is trained under
    ``DistributedDataParallel``: each rank takes a share of every global batch of
    ``config.batch_size`` rows, losses are scaled so the update equals a one-process step on
    the whole global batch, validation metrics come from all ranks' gathered predictions and
    only rank 0 writes files and prints (:mod:`crossrank.distributed`). Initialize the
    process group (:func:`~crossrank.distributed.init_distributed`) before building the
    Trainer, with ``config.device`` set to the rank's device (``DistContext.device``).

    Args:
        out_dir: where checkpoints and ``metrics.jsonl`` go; None writes no file (the best
            weights are then kept in memory, and there is nothing to resume from).
        metadata: extra entries for ``model.json``; verbose: print one line per epoch.
        on_epoch: called with each epoch's record once it is saved; what it raises ends the run.
        task_names: a multi-task model's labels, naming its metrics (``click/auc``) and the
            monitor's label (:mod:`crossrank.train.multitask_metrics`); None: task0, task1...
        keep_best: end with the best epoch's weights; False leaves the last epoch's in ``model``
            (a fixed-length run such as :func:`~crossrank.train.inmemory.fit_tensors`);
            ``model.safetensors`` holds the best epoch's either way.
    """

    def __init__(self, model: RankingModel, config: TrainConfig, *,
                 out_dir: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 verbose: bool = True, keep_best: bool = True,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 task_names: Sequence[str] | None = None) -> None:
        self.model, self.config = model, config
        self.task_names = task_names
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.verbose, self.keep_best = verbose, keep_best
        self.metadata, self.on_epoch = metadata or {}, on_epoch or (lambda record: None)
        self.monitor = resolve_monitor(config.monitor, model.tasks, task_names)
        check_task_weights(config.task_weights, len(model.tasks))
        self.world = current_context()
        self.net: torch.nn.Module = model  # what the training step calls: model or DDP(model)
        averager = None
        if self.world.is_distributed:
            device = torch.device(config.device)
            ids = None
            if device.type == "cuda":
                ids = [device.index if device.index is not None else torch.cuda.current_device()]
            # sparse tables are averaged after the backward pass, not by DDP (the module
            # doc of crossrank.distributed.sparse_gradients says why)
            averager = SparseGradientAverager(leave_out_of_ddp(model))
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.by_path = check_path_training(model, config)  # the linear family's solver
        # every rank updates its own (equal) average: the weights are equal on every rank
        self.ema_decay = None if self.by_path else resolve_ema_decay(config.ema_decay,
                                                                     model.tasks)
        self.average = None if self.ema_decay is None else WeightAverage(
            model, decay=self.ema_decay, lazy_tables=sparse_tables(model))
        # after backward: the ranks' sparse gradients averaged, then the lazy average's rows
        hooks = [hook for hook in (averager.average if averager else None,
                                   self.average.before_step if self.average else None) if hook]
        self.train_step = TrainStep(model, config, net=self.net, after_backward=hooks)
        self.optimizer = self.train_step.optimizer

    def fit(self, train: BatchSource, valid: BatchSource | None, *, resume: bool = False,
            stop_after_epochs: int | None = None) -> FitResult:
        """Train; ``stop_after_epochs`` ends the run early (as an interruption would).

        Raises:
            DivergedError: the run diverged (see the class doc); ``model`` then holds the best
                epoch's weights so far, and ``model.safetensors`` is left as it was.
        """
        cfg, model = self.config, self.model
        out = self.out_dir if self.world.is_main else None  # only rank 0 writes
        if resume and self.out_dir is None:
            raise ValueError("resume=True needs the out_dir of the run to resume, got None")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        start_epoch, best, best_epoch, bad_epochs = 0, None, -1, 0
        history: list[dict[str, Any]] = []
        best_weights: dict[str, Tensor] | None = None  # without an out_dir
        if resume:
            start_epoch, best, best_epoch, bad_epochs, history = self._resume()
        elif out is not None:
            # A fresh run in an old directory must not append to the old run's metrics.
            (out / "metrics.jsonl").unlink(missing_ok=True)
        higher = higher_is_better(self.monitor)
        has_valid = valid is not None and len(valid) > 0
        stopped_early = False
        try:
            for epoch in range(start_epoch, cfg.epochs):
                if stop_after_epochs is not None and epoch >= stop_after_epochs:
                    break
                saving: Future[str] | None = None  # the best weights' save, when improved
                started = time.perf_counter()
                point = path_epoch(model, train, epoch, device=cfg.device, threads=cfg.threads) \
                    if self.by_path else {}  # the linear model's path: its point's C, loss...
                train_loss, skipped = (point.pop("train_loss"), 0) if self.by_path else \
                    self._train_epoch(train, epoch, epoch * steps_per_epoch, total_steps,
                                      steps_per_epoch)
                health.check_weights(model, epoch=epoch, lr=None if self.by_path else cfg.lr)
                record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss,
                                          "seconds": time.perf_counter() - started}
                record["samples_per_s"] = len(train) / max(record["seconds"], 1e-9)
                record.update(point)
                if cfg.on_nonfinite == "skip":
                    record["skipped_steps"] = skipped
                # with training.ema_decay the averaged weights are validated and saved as the
                # best; the live ones go on training (and into latest.safetensors)
                with self._averaged():
                    if valid is not None and has_valid:
                        scores, labels, weights = score(model, valid, device=cfg.device,
                                                        world=self.world)
                        record["valid"] = model_metrics(model.tasks,
                                                        Scored(scores, labels, weights),
                                                        self.task_names)
                        if len(model.tasks) == 1:
                            record.update(health.quality_flags(model.task, scores, labels,
                                                               record["valid"], weights))
                        value = record["valid"][self.monitor]
                    else:
                        value = -train_loss if higher else train_loss
                    # every rank must take rank 0's early-stopping and checkpoint decisions
                    value = broadcast_float(value)
                    # a NaN metric (or an infinite one) is never an improvement
                    improved = math.isfinite(value) and (
                        best is None or (value > best if higher else value < best))
                    if improved:
                        best, best_epoch, bad_epochs = value, epoch + 1, 0
                        if out is not None:
                            # written while the optimizer state is (_checkpoint_latest joins
                            # it); an average is written before the live weights return
                            saving = in_background(self._save_best, out, record,
                                                    never_improved=False)
                            if self.average is not None:
                                wait([saving])
                        elif self.out_dir is None and self.keep_best:
                            best_weights = {k: v.detach().clone()
                                            for k, v in model.state_dict().items()}
                    else:
                        bad_epochs += 1
                history.append(record)
                if out is not None:
                    with open(out / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    self._checkpoint_latest(out, epoch + 1, best, best_epoch, bad_epochs, history,
                                            saving=saving)
                if self.verbose and self.world.is_main:
                    print(health.epoch_line(record), flush=True)
                self.on_epoch(record)
                if bad_epochs > cfg.patience:
                    stopped_early = True
                    break
        except DivergedError as err:  # every rank raises it at the same update (see TrainStep)
            self._restore_best(best_weights)
            where = health.standing(self.out_dir, best_epoch, keep_best=self.keep_best)
            raise DivergedError(f"{err}; {where}") from None
        self._restore_best(best_weights)
        if not self.keep_best and self.average is not None and self.average.updates:
            self.average.copy_into_model()  # a fixed-length run ends with its average
        if history and best_epoch == -1:
            raise health.no_finite_value(history, self.monitor, has_valid)
        end = health.run_health(history, best_epoch, monitor=self.monitor, has_valid=has_valid,
                                task=model.task, lr=None if self.by_path else cfg.lr,
                                steps_per_epoch=steps_per_epoch)
        if end.never_improved and out is not None and self.keep_best:
            self._save_best(out, history[0], never_improved=True)  # model: epoch 1's again
        for note in end.notes if self.verbose and self.world.is_main else ():
            print(note, flush=True)
        best_metrics: dict[str, float] = next(
            (h.get("valid", {}) for h in history if h["epoch"] == best_epoch), {})
        return FitResult(best_epoch, best_metrics, history, stopped_early, end.never_improved,
                         end.skipped_steps, end.no_better_than_constant)

    def _train_epoch(self, train: BatchSource, epoch: int, step: int, total_steps: int,
                     steps_per_epoch: int) -> tuple[float, int]:
        """One pass over ``train``, updates ``step``, ``step + 1``, ...; the mean task loss
        of the batches trained on and how many updates were skipped (non-finite)."""
        cfg, world = self.config, self.world
        self.model.train()
        running, seen = 0.0, 0.0  # seen: rows, or their weight with row weights
        budget = health.SkipBudget(cfg, epoch=epoch, steps_per_epoch=steps_per_epoch)
        bar = _progress(len(train), f"epoch {epoch + 1}/{cfg.epochs}",
                        cfg.progress and world.is_main)
        for i, (weight, (dense, sparse, label, rows_w)) in enumerate(iter_shares(
                train, cfg.batch_size, shuffle=True, seed=cfg.seed + epoch, rank=world.rank,
                world_size=world.world_size)):
            if label is None:
                raise ValueError("the training data has no label column")
            if (label.dim() == 2) != (len(self.model.tasks) > 1) or \
                    (label.dim() == 2 and label.shape[1] != len(self.model.tasks)):
                raise ValueError(f"the model has {len(self.model.tasks)} task(s), the data's "
                                 f"labels have shape {tuple(label.shape)}")
            # weight n_r W / b: DDP's average over the ranks is then the global batch's mean
            # gradient for any share sizes (0 for a stand-in row when this share is empty)
            ddp_weight = weight
            if rows_w is not None and world.is_distributed:  # weighted rows: W s_r / S
                ddp_weight = share_weight(rows_w, weight, world.world_size)
            try:
                loss = self.train_step(dense, sparse, label, step=step,
                                       total_steps=total_steps,
                                       weight=ddp_weight if world.is_distributed else None,
                                       sample_weight=rows_w,
                                       row_share=weight if world.is_distributed else None)
            except NonFiniteUpdate as err:  # not applied: stop, or skip and count
                budget.spend(err.why, update=i + 1)
            else:
                if self.average is not None:
                    self.average.update()
                n = float(label.shape[0]) if weight else 0.0
                if rows_w is not None:  # the reported loss is the weighted mean
                    n = float(rows_w.sum()) if weight else 0.0
                running += float(loss) * n
                seen += n
            step += 1
            if bar is not None:
                bar.update(round(label.shape[0] * world.world_size / weight) if weight else 0)
                if seen:
                    bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        if world.is_distributed:
            running, seen = all_reduce_sum([running, seen])
        if not seen:
            raise budget.nothing_trained() if budget.skipped else ValueError(
                "the training set is empty")
        return running / seen, budget.skipped

    def _save_best(self, out: Path, record: dict[str, Any], *, never_improved: bool) -> str:
        """Save the model as the run's best; returns the weights' SHA-256."""
        return save_model(out, self.model, extra={
            **self.metadata, "epoch": record["epoch"], "metrics": record.get("valid", {}),
            "train_config": self.config.to_dict(), "world_size": self.world.world_size,
            "never_improved": never_improved})

    def _checkpoint_latest(self, out: Path, epoch: int, best: float | None, best_epoch: int,
                           bad_epochs: int, history: list[dict[str, Any]], *,
                           saving: Future[str] | None) -> None:
        """``saving``: this epoch's weights being saved as the best (in another thread);
        once saved they become ``latest.safetensors`` by a hard link instead of a second
        write of every weight."""
        def latest() -> str:
            path = out / "latest.safetensors"
            if saving is None or self.average is not None:  # the live weights, not the best
                if saving is not None:
                    saving.result()  # the best model written (or its error raised)
                return save_tensors(path, self.model.state_dict())
            digest = saving.result()  # the best model written (or its error raised)
            atomic_link(out / "model.safetensors", path)
            return digest

        try:
            progress = {"epoch": epoch, "best": best, "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs, "history": history}
            average: dict[str, Tensor] = {}
            if self.average is not None:
                progress.update(average_updates=self.average.updates, average_residuals=True)
                average = self.average.state_dict()
            save_training_state(out, optimizer_states=self.optimizer.state_dict(),
                                progress=progress, latest=latest, average=average)
        finally:
            if saving is not None:
                wait([saving])  # never leave the epoch with a write in flight

    def _resume(self) -> tuple[int, float | None, int, int, list[dict[str, Any]]]:
        assert self.out_dir is not None  # fit() checked
        states, progress, average, weights = read_resume_state(self.out_dir, self.world)
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(states)
        if self.average is not None:
            if "average_updates" not in progress:
                raise ValueError(f"cannot resume with training.ema_decay {self.ema_decay}: the "
                                 f"run in {str(self.out_dir)!r} kept no weight average")
            self.average.load_state_dict(average, progress["average_updates"],
                                         residuals=bool(progress.get("average_residuals")))
        return (progress["epoch"], progress["best"], progress["best_epoch"],
                progress["bad_epochs"], progress["history"])

    def _averaged(self) -> AbstractContextManager[None]:
        """The model holds the weight average inside the block (without one: its own)."""
        return nullcontext() if self.average is None else self.average.applied()

    def _restore_best(self, best_weights: dict[str, Tensor] | None) -> None:
        """Load the best epoch's weights (from ``out_dir``, or ``best_weights`` without one)."""
        if self.keep_best and self.out_dir is not None:
            best = self.out_dir / "model.safetensors"
            if self.world.is_main and best.is_file():
                self.model.load_state_dict(load_tensors(best))
            if self.world.is_distributed:  # other ranks may not see out_dir (several machines)
                broadcast_module(self.model)
        elif self.keep_best and best_weights is not None:  # every rank kept its (equal) copy
            self.model.load_state_dict(best_weights)
        self.model.eval()


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True, leave=False)
