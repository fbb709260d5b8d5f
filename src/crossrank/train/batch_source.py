"""What the training loop and scoring read: batches from a source, and one data-parallel
rank's share of each global batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from torch import Tensor

from crossrank.distributed import all_reduce_sum, shard_batches

# dense, sparse (None: no fields), label (None: unlabelled), row weights (None: unweighted)
Batch = tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]


class BatchSource(Protocol):
    """What the loop reads: an encoded dataset (``crossrank.data.EncodedDataset``) or tensors
    in memory (:class:`~crossrank.train.inmemory.TensorSource`).

    ``iter_batches`` yields (dense, sparse, label, weight) batches in an order that depends
    only on ``seed`` (the Trainer passes ``config.seed + epoch``); sparse is None for a model
    without categorical fields, label None for unlabelled data, weight None for data without
    row weights.
    """

    def __len__(self) -> int: ...

    def iter_batches(self, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]: ...


@runtime_checkable
class ShardedBatchSource(BatchSource, Protocol):
    """A source that reads one data-parallel rank's share of every global batch by itself
    (``crossrank.data.EncodedDataset.iter_shares``), instead of whole global batches."""

    def iter_shares(self, batch_size: int, *, shuffle: bool, seed: int, rank: int,
                    world_size: int) -> Iterator[tuple[float, Batch]]: ...


def iter_shares(data: BatchSource, batch_size: int, *, shuffle: bool, seed: int, rank: int,
                world_size: int) -> Iterator[tuple[float, Batch]]:
    """(weight, this rank's share) of every global batch of ``data``'s epoch.

    The source's own per-rank reader when it has one, else whole global batches cut by
    :func:`~crossrank.distributed.shard_batches`; both give the same shares and weights.
    """
    if isinstance(data, ShardedBatchSource):
        return data.iter_shares(batch_size, shuffle=shuffle, seed=seed, rank=rank,
                                world_size=world_size)
    return shard_batches(data.iter_batches(batch_size, shuffle=shuffle, seed=seed), rank=rank,
                         world_size=world_size)


def share_weight(row_weights: Tensor, weight: float, world_size: int) -> float:
    """The data-parallel weight of a share whose rows carry weights (a collective).

    ``W s_r / S`` for a share of row-weight sum ``s_r`` of a global batch of ``S``: with each
    rank's loss the weighted mean over its share, DDP's average over the W ranks is then the
    global batch's weighted mean, ``sum_r s_r L_r / S``, whatever the shares' weights (0 for
    an empty share's stand-in, ``weight`` 0, and for a batch whose rows all weigh 0).
    """
    mine = float(row_weights.sum()) if weight else 0.0
    total = all_reduce_sum([mine])[0]
    return world_size * mine / total if total > 0 else 0.0
