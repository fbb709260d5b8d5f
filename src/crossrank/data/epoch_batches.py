"""One epoch of batches, read a window of the epoch's order at a time.

:class:`~crossrank.data.dataset.EncodedDataset` draws the order
(:class:`~crossrank.data.order.EpochOrder`) and hands its windows here: :func:`window_reader`
gathers one window's rows (from arrays in memory, or from a cache with one file read per run
of consecutive rows, so the resident memory is one window's bytes whatever the cache's size),
and :func:`epoch_shares` cuts the windows into global batches, of which a data-parallel rank
gathers only its share (:func:`~crossrank.distributed.shards.batch_share`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from crossrank.data.multi_valued import join_padded
from crossrank.data.npy_rows import NpyRows
from crossrank.data.order import EpochOrder

if TYPE_CHECKING:
    import torch

# one window's or batch's rows: dense (b, D_out), sparse (b, F), label (b,) or None,
# weight (b,) or None
RowArrays = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]
WindowReader = Callable[[int, int], RowArrays]
# torch (and crossrank.distributed, which imports it) are imported where batches are made, so
# that importing crossrank.data (the encoders the torch-free scoring path uses) does not
Batch = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor | None", "torch.Tensor | None"]
# a cache's multi-valued field: values (E,), offsets (N+1,), padded width
Bag = tuple[np.ndarray, np.ndarray, int]


def epoch_shares(
    order: EpochOrder,
    read_window: Callable[[np.ndarray], WindowReader],
    batch_size: int,
    *,
    start: int,
    end: int,
    rank: int,
    world_size: int,
) -> Iterator[tuple[float, Batch]]:
    """(weight, share) of global batches ``[start + j B, start + (j+1) B)`` of the order.

    Windows of the order are read one at a time; a share that straddles two windows is
    gathered in two parts. The last batch ends at ``end`` (shorter when ``end - start`` is not
    a multiple of B).

    Args:
        order: the epoch's order of row positions.
        read_window: positions of one window -> a reader of its rows ``i:j``.
        batch_size: B, rows per global batch.
        start, end: the order's positions to cover.
        rank, world_size: whose share of each global batch to gather.

    Shape:
        (weight, (dense (n_r, D_out) float32, sparse (n_r, F) int64, label (n_r,) float32 or
        None, row weights (n_r,) float32 or None)), n_r the share's rows of the global batch.

    Example:
        >>> sparse, dense = np.arange(5).reshape(5, 1), np.zeros((5, 1), np.float32)
        >>> read = lambda chunk: window_reader(chunk, dense, sparse, None, None)
        >>> shares = epoch_shares(EpochOrder(5, shuffle=False), read, 2, start=0, end=5,
        ...                       rank=0, world_size=1)
        >>> [(w, b[1][:, 0].tolist()) for w, b in shares]
        [(1.0, [0, 1]), (1.0, [2, 3]), (1.0, [4])]
    """
    from crossrank.distributed.shards import batch_share

    batch_lo = start  # the next global batch to finish
    parts: list[RowArrays] = []  # this rank's rows of it read so far
    chunk_lo = start
    for chunk in order.chunks(start, end):
        chunk_hi = chunk_lo + len(chunk)
        window = read_window(chunk)
        while batch_lo < chunk_hi:
            size = min(batch_size, end - batch_lo)
            lo, hi, weight = batch_share(size, rank, world_size)
            share_lo, share_hi = batch_lo + lo, batch_lo + hi  # positions in the epoch
            a, b = max(share_lo, chunk_lo), min(share_hi, chunk_hi)
            if a < b:
                parts.append(window(a - chunk_lo, b - chunk_lo))
            if share_hi > chunk_hi:
                break  # the rest of this share is in the next window
            yield weight, _tensors(parts)
            parts = []
            batch_lo += size
        chunk_lo = chunk_hi
        del window  # one window's buffers at a time: free them before reading the next


def window_reader(
    base: np.ndarray,
    dense: np.ndarray,
    sparse: np.ndarray,
    label: np.ndarray | None,
    files: dict[str, NpyRows] | None,
    *,
    weight: np.ndarray | None = None,
    bags: tuple[Bag, ...] = (),
) -> WindowReader:
    """A reader of ``base[i:j]``'s rows, from one buffer of the window's rows for a cache.

    Args:
        base: the window's row numbers in the arrays (or files), in epoch order.
        dense, sparse, label, weight: the arrays, gathered from directly when ``files`` is None.
        files: a cache's ``dense``/``sparse``/``label`` (/``weight``) files, read with one read
            per run of consecutive rows.
        bags: a cache's multi-valued fields, gathered row by row from their mappings and
            padded with -1 after the sparse ids (:func:`~crossrank.data.multi_valued.pad_lists`).

    Shape:
        base (C,) -> reader(i, j): dense (j-i, D_out), sparse (j-i, F + sum of the bags'
        widths), label (j-i,) or None, weight (j-i,) or None.
    """
    if bags:
        plain = window_reader(base, dense, sparse, label, files, weight=weight)

        def with_bags(i: int, j: int) -> RowArrays:
            d, s, y, row_weight = plain(i, j)
            jagged = [(values, offsets) for values, offsets, _ in bags]
            widths = [width for *_, width in bags]
            return d, join_padded(s, jagged, widths, rows=base[i:j]), y, row_weight
        return with_bags
    if files is None:  # arrays in memory: gather straight from them
        def gather(i: int, j: int) -> RowArrays:
            rows = base[i:j]
            return (dense[rows], sparse[rows], None if label is None else label[rows],
                    None if weight is None else weight[rows])
        return gather
    # The window's rows sorted, as runs of consecutive rows (a window's blocks), each run
    # read with one file read; where[k] is the buffer row of base[k].
    by_row = np.argsort(base, kind="stable")  # (C,)
    rows = base[by_row]
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.concatenate([[0], breaks])] if len(rows) else rows
    stops = rows[np.concatenate([breaks - 1, [len(rows) - 1]])] + 1 if len(rows) else rows
    where = np.empty_like(by_row)
    where[by_row] = np.arange(len(by_row))
    buffers = {key: f.read_runs(starts, stops) for key, f in files.items()}

    def from_buffer(i: int, j: int) -> RowArrays:
        idx = where[i:j]
        label = buffers["label"][idx] if "label" in buffers else None
        weights = buffers["weight"][idx] if "weight" in buffers else None
        return buffers["dense"][idx], buffers["sparse"][idx], label, weights
    return from_buffer


def _tensors(parts: list[RowArrays]) -> Batch:
    """One batch's parts (1 or 2, from consecutive windows) as new tensors."""
    import torch

    def join(k: int, dtype: type) -> np.ndarray:
        # the parts are fancy-indexed copies (never views of a read-only mapping), so they
        # can back tensors as they are
        whole = parts[0][k] if len(parts) == 1 else np.concatenate([p[k] for p in parts])
        return np.ascontiguousarray(whole, dtype=dtype)
    dense = torch.from_numpy(join(0, np.float32))  # (b, D_out)
    sparse = torch.from_numpy(join(1, np.int64))  # (b, F)
    label = None if parts[0][2] is None else torch.from_numpy(join(2, np.float32))  # (b,)
    weight = None if parts[0][3] is None else torch.from_numpy(join(3, np.float32))  # (b,)
    return dense, sparse, label, weight
