"""Training on tensors held in memory (the demo, small experiments, tests): the Trainer's loop
over a :class:`TensorSource`, with no file written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from crossrank.models.base import RankingModel
from crossrank.train.config import TrainConfig
from crossrank.train.loop import Batch, Trainer


class TensorSource:
    """A :class:`~crossrank.train.loop.BatchSource` over tensors in memory.

    Shuffled orders come from one stream of permutations: ``iter_batches(seed=seed + k)``
    uses the k-th ``torch.randperm`` drawn from a generator seeded with ``seed`` (k >= 0), so
    a Trainer with ``config.seed == seed`` visits draw k in epoch k. An order depends only on
    its seed: asked out of turn (a resumed run), the stream is replayed from its start.

    Args:
        dense: the dense features; labels: the targets.
        sparse: the categorical ids, or None for a model without categorical fields.
        weights: the rows' weights (>= 0), or None.
        seed: the seed of the permutation stream.

    Shape:
        dense: (R, n_dense) float; labels: (R,) or (R, T) (T tasks, NaN: missing); sparse:
        (R, F) int64 or None; weights: (R,) or None.

    Example:
        >>> source = TensorSource(torch.zeros(5, 1), torch.arange(5.0))
        >>> [label.tolist() for _, _, label, _ in source.iter_batches(2, shuffle=False, seed=0)]
        [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """

    def __init__(self, dense: Tensor, labels: Tensor, *, sparse: Tensor | None = None,
                 seed: int = 0, weights: Tensor | None = None) -> None:
        if dense.dim() != 2:
            raise ValueError(f"dense must have shape (R, n_dense), got {tuple(dense.shape)}")
        rows = dense.shape[0]
        if labels.shape != (rows,) and (labels.dim() != 2 or labels.shape[0] != rows
                                        or labels.shape[1] < 2):
            raise ValueError(f"labels must have shape ({rows},), or ({rows}, T) for T >= 2 "
                             f"tasks, like dense's rows, got {tuple(labels.shape)}")
        if sparse is not None and (sparse.dim() != 2 or sparse.shape[0] != rows):
            raise ValueError(f"sparse must have shape ({rows}, F) or be None, got "
                             f"{tuple(sparse.shape)}")
        if weights is not None and (weights.shape != (rows,) or not bool((weights >= 0).all())):
            raise ValueError(f"weights must have shape ({rows},) and hold values >= 0, got "
                             f"shape {tuple(weights.shape)}")
        self.dense, self.labels, self.sparse, self.seed = dense, labels, sparse, seed
        self.weights = weights
        self._generator = torch.Generator().manual_seed(seed)
        self._next_draw = 0  # the draw the generator gives next

    def __len__(self) -> int:
        return self.dense.shape[0]

    def iter_batches(self, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        order = self._order(seed) if shuffle else None
        for start in range(0, len(self), batch_size):
            rows = (slice(start, start + batch_size) if order is None
                    else order[start:start + batch_size])
            yield (self.dense[rows], None if self.sparse is None else self.sparse[rows],
                   self.labels[rows], None if self.weights is None else self.weights[rows])

    def _order(self, seed: int) -> Tensor:
        draw = seed - self.seed
        if draw < 0:
            raise ValueError(f"seed must be >= the source's seed {self.seed}, got {seed}")
        if draw < self._next_draw:
            self._generator.manual_seed(self.seed)
            self._next_draw = 0
        while self._next_draw < draw:
            torch.randperm(len(self), generator=self._generator)
            self._next_draw += 1
        self._next_draw += 1
        return torch.randperm(len(self), generator=self._generator)


@dataclass(frozen=True)
class InMemoryFitConfig:
    """The options of :func:`fit_tensors` (their meaning: :class:`TrainConfig`'s fields)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 1000
    schedule: str = "constant"
    seed: int = 0


def fit_tensors(model: RankingModel, dense: Tensor, labels: Tensor, *,
                sparse: Tensor | None = None,
                config: InMemoryFitConfig = InMemoryFitConfig()) -> list[float]:
    """Train ``model`` for ``config.epochs`` epochs on in-memory tensors; returns each epoch's
    mean task loss (the regularizer is trained on, not reported).

    The :class:`~crossrank.train.loop.Trainer`'s loop without files, validation or early
    stopping: ``model`` ends with the last epoch's weights, in eval mode.

    Shape:
        dense: (R, n_dense); sparse: (R, F) or None; labels: (R,), or (R, T) for a T-task
        model (NaN where a label is missing).

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
    source = TensorSource(dense, labels, sparse=sparse, seed=config.seed)
    train_config = TrainConfig(
        optimizer=config.optimizer, lr=config.lr, epochs=config.epochs,
        batch_size=config.batch_size, schedule=config.schedule, seed=config.seed,
        patience=config.epochs,  # never stops early
        ema_decay=0.0,  # the last epoch's weights, as documented, for every task
        device=str(next(model.parameters()).device), progress=False)
    trainer = Trainer(model, train_config, verbose=False, keep_best=False)
    return [record["train_loss"] for record in trainer.fit(source, None).history]
