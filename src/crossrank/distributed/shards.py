"""Shard arithmetic: which rows of a global batch, and which input files, a rank takes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a batch of ``n`` rows that ``rank`` takes: contiguous shares whose
    sizes differ by at most one, the larger ones first (as ``numpy.array_split``).

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def batch_share(n: int, rank: int, world_size: int) -> tuple[int, int, float]:
    """Rows ``[lo, hi)`` of a global batch of ``n`` rows that ``rank`` computes on, and the
    weight of their mean loss (see :func:`shard_batches`).

    The rows are :func:`shard_bounds`' share, or the batch's first row with weight 0 when that
    share is empty.

    Example:
        >>> batch_share(5, 1, 2), batch_share(1, 1, 2)
        ((3, 5, 0.8), (0, 1, 0.0))
    """
    lo, hi = shard_bounds(n, rank, world_size)
    weight = (hi - lo) * world_size / n if n else 0.0
    if lo == hi:
        lo, hi = 0, min(n, 1)
    return lo, hi, weight


def shard_batches(batches: Iterable[tuple[Any, ...]], *, rank: int, world_size: int
                  ) -> Iterator[tuple[float, tuple[Any, ...]]]:
    """This rank's share of every global batch, with the weight of its mean loss.

    The weight is n_r W / b for a share of n_r of the global batch's b rows: DDP averages the
    W ranks' gradients, so weighting each rank's mean loss by it gives the gradient of the
    global batch's mean loss (the weight is 1 when the shares are equal). A rank whose share
    is empty (b < W) gets the global batch's first row with weight 0, so that it still runs
    the forward and backward passes DDP's all-reduce needs, contributing a zero gradient.

    Shape:
        each batch: tensors with a leading (b,) dimension (None entries pass through)
        -> (weight, the same tensors cut to rows ``shard_bounds(b, rank, world_size)``).

    Example:
        >>> import torch
        >>> batches = [(torch.arange(4), None), (torch.arange(4, 7), None)]
        >>> [(w, x.tolist()) for w, (x, _) in shard_batches(batches, rank=1, world_size=2)]
        [(1.0, [2, 3]), (0.6666666666666666, [6])]
    """
    for batch in batches:
        n = next(t.shape[0] for t in batch if t is not None)
        lo, hi, weight = batch_share(n, rank, world_size)
        yield weight, tuple(None if t is None else t[lo:hi] for t in batch)




def assign_files(sizes: Sequence[int], world_size: int) -> list[tuple[int, int]]:
    """Contiguous ranges ``[lo, hi)`` of ``sizes``' files for ranks ``0..world_size-1``,
    balanced by bytes: a file goes to the rank whose 1/W of the total holds its midpoint.

    Ranges are in rank order and cover every file once, so the ranks' parts joined in rank
    order are the files in order. A rank may get no file (fewer files than ranks, or one file
    larger than the others together).

    Example:
        >>> assign_files([10, 10, 10, 10], 2)
        [(0, 2), (2, 4)]
        >>> assign_files([100, 1, 1, 1], 2), assign_files([5], 3)
        ([(0, 1), (1, 4)], [(0, 0), (0, 1), (1, 1)])
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in sizes):
        raise ValueError(f"sizes must be non-negative ints, got {list(sizes)!r}")
    weights = [s + 1 for s in sizes]  # + 1: empty files still count, and total > 0
    total, start, owner = sum(weights), 0, []
    for w in weights:
        owner.append(min(world_size - 1, (2 * start + w) * world_size // (2 * total)))
        start += w
    ranges, lo = [], 0
    for rank in range(world_size):
        hi = lo + owner.count(rank)
        ranges.append((lo, hi))
        lo = hi
    return ranges
