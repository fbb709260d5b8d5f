"""Scoring a whole dataset (in row order, or gathered from every data-parallel rank) and its
metrics: what validation during training and ``crossrank evaluate`` compute."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from crossrank.distributed import DistContext, all_gather_1d
from crossrank.models.base import RankingModel
from crossrank.models.task import predict_tasks
from crossrank.train.batch_source import BatchSource, iter_shares
from crossrank.train.metrics import compute_metrics
from crossrank.train.multitask_metrics import multitask_metrics


class Scored(NamedTuple):
    """Predictions, labels and row weights (None: unweighted data) of a dataset.
    Shape: each (R,) float64; scores and labels (R, T) for a T-task model (NaN labels:
    missing)."""

    scores: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None


def score(model: RankingModel, data: BatchSource, *, batch_size: int = 4096,
          device: str = "cpu", world: DistContext | None = None) -> Scored:
    """Predictions, labels and row weights over a whole dataset, in row order.

    With a distributed ``world`` (a collective: every rank must call it) each rank scores its
    share of every batch and all ranks receive all rows' scores, labels and weights, in the
    order of the ranks' shares (a permutation of row order, the same for the three).

    Shape:
        -> Scored: scores, labels, weights (R,) float64 (weights None without row weights).
    """
    if world is not None and world.is_distributed:
        shards = (part for weight, part in iter_shares(data, batch_size, shuffle=False, seed=0,
                                                       rank=world.rank,
                                                       world_size=world.world_size) if weight)
        s, y, w = _score_batches(model, shards, device, len(data))
        has_weights = all_gather_1d(np.array([w is not None], dtype=np.float64))
        if has_weights.any():  # every rank holds the same data's columns: all, or none
            w = all_gather_1d(w if w is not None else np.ones(len(s)))
        return Scored(_gather(s), _gather(y), w)
    return _score_batches(model, data.iter_batches(batch_size, shuffle=False, seed=0), device,
                          len(data))


def _gather(a: np.ndarray) -> np.ndarray:
    """Every rank's rows of ``a`` (R_r,) or (R_r, T), in rank order."""
    if a.ndim == 1:
        return all_gather_1d(a)
    return all_gather_1d(np.ascontiguousarray(a).reshape(-1)).reshape(-1, a.shape[1])  # (R, T)


def _score_batches(model: RankingModel, batches: Iterator[tuple[Any, ...]], device: str,
                   rows: int) -> Scored:
    """Scores, labels and weights of ``batches`` (at most ``rows`` rows)."""
    model.eval()
    # filled in place: a list of per-batch arrays and its concatenation would hold every
    # score twice at the end (16 more bytes a row)
    shape = (rows,) if len(model.tasks) == 1 else (rows, len(model.tasks))
    scores, labels = np.empty(shape), np.empty(shape)
    weights: np.ndarray | None = None
    at = 0
    with torch.no_grad():
        for dense, sparse, label, weight in batches:
            logits = model(dense.to(device), None if sparse is None else sparse.to(device))
            n = label.shape[0]
            if at + n > rows:
                raise ValueError(f"the data yielded more than its {rows} rows")
            scores[at:at + n] = predict_tasks(model.tasks, logits).double().cpu().numpy()
            labels[at:at + n] = label.double().numpy()
            if weight is not None:
                weights = np.empty(rows) if weights is None else weights
                weights[at:at + n] = weight.double().numpy()
            at += n
    return Scored(scores[:at], labels[:at], None if weights is None else weights[:at])


def evaluate(model: RankingModel, data: BatchSource, *, batch_size: int = 4096,
             device: str = "cpu", world: DistContext | None = None,
             names: Sequence[str] | None = None) -> dict[str, float]:
    """Metrics over the whole of ``data`` (AUC and log-loss on all rows at once, weighted
    when the data has row weights); with a distributed ``world``, over all ranks' gathered
    predictions (see :func:`score`). A multi-task model's are per task (:func:`model_metrics`;
    ``names``: its labels)."""
    scored = score(model, data, batch_size=batch_size, device=device, world=world)
    return model_metrics(model.tasks, scored, names)


def model_metrics(tasks: Sequence[str], scored: Scored,
                  names: Sequence[str] | None = None) -> dict[str, float]:
    """:func:`~crossrank.train.metrics.compute_metrics` of one task, or every task's metrics
    named ``LABEL/METRIC`` (:func:`~crossrank.train.multitask_metrics.multitask_metrics`;
    ``names`` None: task0, task1, ...)."""
    if len(tasks) == 1:
        return compute_metrics(tasks[0], *scored)
    names = list(names) if names is not None else [f"task{k}" for k in range(len(tasks))]
    return multitask_metrics(tasks, names, *scored)
