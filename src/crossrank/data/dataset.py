"""Encoded rows to train on: a cache directory (memory-mapped .npy) or arrays in memory.

:class:`EncodedDataset` is the same interface for a cache written by
:func:`~crossrank.data.cache.encode_to_cache` (:meth:`EncodedDataset.open`) and for in-memory
arrays (:meth:`EncodedDataset.from_arrays`), with cheap row-range views
(:meth:`~EncodedDataset.rows`) and index views (:meth:`~EncodedDataset.subset`) for validation
splits, and :meth:`~EncodedDataset.iter_batches` yielding torch tensors, each row exactly once
per epoch.

Memory stays flat as the data grows: an epoch's order is drawn one window of rows at a time
(:class:`~crossrank.data.order.EpochOrder`, a windowed block shuffle), and batches of a cache
are gathered from one window's rows (:mod:`crossrank.data.epoch_batches`), read with plain
file reads into a buffer (:mod:`crossrank.data.npy_rows`: the bytes of one window, ~40 MB for
262,144 Criteo-shaped rows, whatever the cache's size). A data-parallel rank gathers only its
share of each global batch (:meth:`~EncodedDataset.iter_shares`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.data.encoded_batch import EncodedBatch
from crossrank.data.epoch_batches import Bag, Batch, WindowReader, epoch_shares, window_reader
from crossrank.data.multi_valued import open_cached_lists
from crossrank.data.npy_rows import NpyRows
from crossrank.data.order import DEFAULT_BLOCK_ROWS, DEFAULT_WINDOW_BLOCKS, EpochOrder
from crossrank.errors import ModelFileError
from crossrank.safe_io import plain_name, read_json_object

CACHE_FORMAT = "crossrank.EncodedDataset"
CACHE_VERSION = 1


class EncodedDataset:
    """Encoded rows (a cache or in-memory arrays), or a view of some of them.

    Shape:
        dense (N, D_out) float32; sparse (N, F) int32 or int64; label (N,) float32 or None;
        ids (N,) or None; weight (N,) float32 or None (the rows' weights, when the data has
        a weight column).

    The epoch order's window (see :class:`~crossrank.data.order.EpochOrder`) is
    ``block_rows * window_blocks`` rows, 4,096 * 64 = 262,144 by default;
    :meth:`with_window_shuffle` gives a view with other values.

    Example:
        >>> ds = EncodedDataset.from_arrays(np.zeros((5, 2), np.float32),
        ...                                 np.arange(10).reshape(5, 2), np.ones(5, np.float32))
        >>> [b[1][:, 0].tolist() for b in ds.iter_batches(2, shuffle=False, seed=0)]
        [[0, 2], [4, 6], [8]]
        >>> [(w, b[1][:, 0].tolist()) for w, b in ds.iter_shares(
        ...     3, shuffle=False, seed=0, rank=1, world_size=2)]
        [(0.6666666666666666, [4]), (1.0, [8])]
        >>> len(ds.rows(1, 4)), ds.subset([4, 0]).sparse.tolist()
        (3, [[8, 9], [0, 1]])
    """

    def __init__(
        self,
        dense: np.ndarray,
        sparse: np.ndarray,
        label: np.ndarray | None,
        ids: np.ndarray | None,
        *,
        meta: dict[str, Any],
        index: np.ndarray | None = None,
        span: tuple[int, int] | None = None,
        files: dict[str, NpyRows] | None = None,
        block_rows: int = DEFAULT_BLOCK_ROWS,
        window_blocks: int = DEFAULT_WINDOW_BLOCKS,
        bags: tuple[Bag, ...] = (),
        weight: np.ndarray | None = None,
    ) -> None:
        self._dense, self._sparse, self._label, self._ids = dense, sparse, label, ids
        self._bags = bags  # a cache's multi-valued fields, jagged, padded into batches
        self._weight = weight
        self._meta = meta
        self._index = index  # row map of an index view
        self._span = span if span is not None else (0, len(sparse))  # range view
        self._files = files  # a cache's dense/sparse/label files, read window by window
        self._window = (block_rows, window_blocks)

    # ------------------------------------------------------------ constructors
    @classmethod
    def open(cls, cache_dir: str | Path) -> EncodedDataset:
        """Open a cache written by :func:`encode_to_cache`, memory-mapped read-only.

        Batches read their rows a window at a time with file reads, not through the
        mappings, so the resident memory of an epoch does not grow with the cache (the
        properties :attr:`dense`, ... are the mappings, for random access).
        """
        cache_dir = Path(cache_dir)
        manifest_path = cache_dir / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no cache manifest at {str(manifest_path)!r}")
        meta = read_json_object(manifest_path)
        if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
            raise ValueError(f"{str(manifest_path)!r} is not a {CACHE_FORMAT} v{CACHE_VERSION} manifest")
        files = meta.get("files")
        if not isinstance(files, dict):
            raise ModelFileError(f"{manifest_path}: key 'files' must be an object")
        # the manifest names files beside it, never a path out of the cache directory
        paths = {key: cache_dir / plain_name(name, source=manifest_path, key=f"files.{key}")
                 for key, name in files.items() if name is not None}

        def load(key: str) -> np.ndarray | None:
            return np.load(paths[key], mmap_mode="r") if key in paths else None

        dense, sparse = load("dense"), load("sparse")
        if dense is None or sparse is None:
            raise ValueError(f"{str(manifest_path)!r} names no dense or sparse file")
        readers = {key: NpyRows.of(paths[key]) for key in ("dense", "sparse", "label", "weight")
                   if key in paths}
        bags = open_cached_lists(meta, cache_dir, manifest_path, len(sparse))
        ds = cls(dense, sparse, load("label"), load("ids"), meta=meta, files=readers, bags=bags,
                 weight=load("weight"))
        ds._check()
        if len(ds) != meta.get("num_rows"):
            raise ValueError(f"cache {str(cache_dir)!r} has {len(ds)} rows, manifest says "
                             f"{meta.get('num_rows')}")
        return ds

    @classmethod
    def from_arrays(
        cls,
        dense: np.ndarray,
        sparse: np.ndarray,
        label: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        *,
        dense_names: Sequence[str] | None = None,
        sparse_names: Sequence[str] | None = None,
        vocab_sizes: Sequence[int] | None = None,
        weight: np.ndarray | None = None,
    ) -> EncodedDataset:
        """An in-memory dataset; ``sparse`` must hold integers (ids are never floats);
        ``weight``: the rows' weights (finite, >= 0), or None."""
        dense = np.asarray(dense)
        sparse = np.asarray(sparse)
        if dense.dtype.kind != "f":
            raise TypeError(f"dense must hold floats, got dtype {dense.dtype}")
        if sparse.dtype.kind not in "iu":
            raise TypeError(f"sparse must hold integer ids, got dtype {sparse.dtype}")
        label = None if label is None else np.asarray(label, dtype=np.float32)
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float32)
            if not (weight >= 0).all() or not np.isfinite(weight).all():
                raise ValueError("weight must hold finite values >= 0")
        if ids is not None:
            ids = np.asarray(ids)
            if ids.dtype.kind not in "iuU":
                raise TypeError(f"ids must be integers or str, got dtype {ids.dtype}")
        if dense.ndim == 2 and sparse.ndim == 2:
            dense_names = dense_names or [f"dense_{i}" for i in range(dense.shape[1])]
            sparse_names = sparse_names or [f"sparse_{i}" for i in range(sparse.shape[1])]
        meta = {
            "num_rows": len(sparse),
            "dense_names": list(dense_names or []),
            "sparse_names": list(sparse_names or []),
            "vocab_sizes": None if vocab_sizes is None else [int(v) for v in vocab_sizes],
        }
        ds = cls(dense.astype(np.float32, copy=False), sparse, label, ids, meta=meta,
                 weight=weight)
        ds._check()
        return ds

    @classmethod
    def from_batch(
        cls,
        batch: EncodedBatch,
        *,
        dense_names: Sequence[str] | None = None,
        sparse_names: Sequence[str] | None = None,
        vocab_sizes: Sequence[int] | None = None,
    ) -> EncodedDataset:
        """One :class:`~crossrank.data.encoded_batch.EncodedBatch` as an in-memory dataset."""
        if not isinstance(batch, EncodedBatch):
            raise TypeError(f"batch must be an EncodedBatch, got {type(batch).__name__}")
        return cls.from_arrays(
            batch.dense, batch.sparse, batch.label, batch.ids,
            dense_names=dense_names, sparse_names=sparse_names, vocab_sizes=vocab_sizes,
            weight=batch.weight,
        )

    def _check(self) -> None:
        n = len(self._sparse)
        if self._dense.ndim != 2 or self._sparse.ndim != 2:
            raise ValueError(f"dense and sparse must be 2-D, got shapes {self._dense.shape} "
                             f"and {self._sparse.shape}")
        for name, a in (("dense", self._dense), ("label", self._label), ("ids", self._ids),
                        ("weight", self._weight)):
            if a is not None and len(a) != n:
                raise ValueError(f"{name} has {len(a)} rows, sparse has {n}")
        if self._label is not None and self._label.ndim not in (1, 2):
            raise ValueError(f"label must be (N,) or (N, T) (T tasks), got shape "
                             f"{self._label.shape}")

    # ------------------------------------------------------------------- views
    def __len__(self) -> int:
        if self._index is not None:
            return len(self._index)
        return self._span[1] - self._span[0]

    def _base_rows(self, positions: np.ndarray | slice) -> np.ndarray | slice:
        if self._index is not None:
            return self._index[positions]
        if isinstance(positions, slice):
            start, stop, _ = positions.indices(len(self))
            return slice(self._span[0] + start, self._span[0] + stop)
        return positions + self._span[0]

    def _view(self, array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        return array[self._base_rows(slice(None))]

    @property
    def dense(self) -> np.ndarray:
        """float32 (N, D_out); a memmap view for caches and row ranges, a copy for subsets."""
        out = self._view(self._dense)
        assert out is not None
        return out

    @property
    def sparse(self) -> np.ndarray:
        """int32 or int64 (N, F); a view for caches and row ranges, a copy for subsets. A
        cache's multi-valued fields are not here: stored jagged, they are padded into batches."""
        out = self._view(self._sparse)
        assert out is not None
        return out

    @property
    def label(self) -> np.ndarray | None:
        """float32 (N,), or None for unlabelled data."""
        return self._view(self._label)

    @property
    def ids(self) -> np.ndarray | None:
        """The id column (N,), or None."""
        return self._view(self._ids)

    @property
    def weight(self) -> np.ndarray | None:
        """float32 (N,) row weights, or None for data without a weight column."""
        return self._view(self._weight)

    @property
    def dense_names(self) -> tuple[str, ...]:
        return tuple(self._meta["dense_names"])

    @property
    def sparse_names(self) -> tuple[str, ...]:
        return tuple(self._meta["sparse_names"])

    @property
    def vocab_sizes(self) -> tuple[int, ...] | None:
        """Per-field id counts (from the encoder), or None for arrays given without them."""
        sizes = self._meta.get("vocab_sizes")
        return None if sizes is None else tuple(sizes)

    def rows(self, start: int, stop: int) -> EncodedDataset:
        """Rows ``start:stop`` of this dataset as a view (no copy for caches)."""
        n = len(self)
        if not (0 <= start <= stop <= n):
            raise ValueError(f"need 0 <= start <= stop <= {n}, got start={start}, stop={stop}")
        if self._index is not None:
            return self._derive(index=self._index[start:stop])
        return self._derive(span=(self._span[0] + start, self._span[0] + stop))

    def subset(self, indices: Sequence[int] | np.ndarray) -> EncodedDataset:
        """The rows at ``indices`` (positions in this dataset), in that order."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"indices must be a 1-D integer sequence, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"indices must lie in [0, {len(self)}), got "
                             f"[{idx.min()}, {idx.max()}]")
        base = self._base_rows(idx)
        assert isinstance(base, np.ndarray)
        return self._derive(index=base)

    def with_window_shuffle(self, *, block_rows: int, window_blocks: int) -> EncodedDataset:
        """This dataset (a view, no copy) shuffled with other window parameters.

        Larger windows mix more and hold more in memory: a window's positions
        (``block_rows * window_blocks`` int64) and, for a cache, the pages of the rows read
        in it.
        """
        EpochOrder(0, shuffle=True, block_rows=block_rows, window_blocks=window_blocks)
        view = self._derive(index=self._index, span=self._span)
        view._window = (block_rows, window_blocks)
        return view

    def _derive(
        self, *, index: np.ndarray | None = None, span: tuple[int, int] | None = None
    ) -> EncodedDataset:
        block_rows, window_blocks = self._window
        return EncodedDataset(self._dense, self._sparse, self._label, self._ids,
                              meta=self._meta, index=index, span=span, files=self._files,
                              block_rows=block_rows, window_blocks=window_blocks,
                              bags=self._bags, weight=self._weight)

    # ----------------------------------------------------------------- batches
    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        start: int = 0,
        stop: int | None = None,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Batches of ``(dense, sparse, label, weight)`` tensors covering each row once.

        The epoch's order is :class:`~crossrank.data.order.EpochOrder` (the windowed block
        shuffle; ``numpy.random.default_rng(seed).permutation(N)`` when N fits in one window)
        when ``shuffle`` (pass ``seed = base_seed + epoch`` for a new, reproducible order each
        epoch), else ``0..N-1``. ``start``/``stop`` select positions of that order, so a run can
        resume mid-epoch (``start = batches_done * batch_size``) or take a shard of it.

        Shape:
            dense (B, D_out) float32, sparse (B, F) int64, label (B,) float32 ((B, T) with T
            tasks, NaN where a label is missing) or None when the data has no label, weight
            (B,) float32 or None when it has no weight column.
        """
        for _, batch in self._epoch(batch_size, shuffle=shuffle, seed=seed, start=start,
                                    stop=stop, drop_last=drop_last, rank=0, world_size=1):
            yield batch

    def iter_shares(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int,
        world_size: int,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[float, Batch]]:
        """Rank ``rank``'s share of every global batch of :meth:`iter_batches`, gathered alone.

        Equals ``shard_batches(self.iter_batches(batch_size, ...), rank=rank,
        world_size=world_size)`` (:mod:`crossrank.distributed`: the weight of the
        share's mean loss, and the global batch's first row with weight 0 for an empty share),
        but gathers only the rows of the share. The global order does not depend on
        ``world_size``. (A cache's window is still read whole by every rank: a share's rows
        are spread over all of the window's blocks, so reading only them would not read fewer
        pages, only make more reads.)

        Shape:
            (weight, (dense (n_r, D_out), sparse (n_r, F) int64, label (n_r,) or None,
            row weights (n_r,) or None)), with
            n_r the share's rows of the global batch (1 for an empty share's stand-in).
        """
        yield from self._epoch(batch_size, shuffle=shuffle, seed=seed, start=start, stop=stop,
                               drop_last=False, rank=rank, world_size=world_size)

    def _epoch(self, batch_size: int, *, shuffle: bool, seed: int, start: int,
               stop: int | None, drop_last: bool, rank: int, world_size: int
               ) -> Iterator[tuple[float, Batch]]:
        """(weight, share) of the global batches of positions ``start:stop`` of the order
        (:func:`~crossrank.data.epoch_batches.epoch_shares`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        block_rows, window_blocks = self._window
        order = EpochOrder(len(self), shuffle=shuffle, seed=seed, block_rows=block_rows,
                           window_blocks=window_blocks)
        stop = len(self) if stop is None else stop
        if not (0 <= start <= stop <= len(self)):
            raise ValueError(f"need 0 <= start <= stop <= {len(self)}, got start={start}, "
                             f"stop={stop}")
        end = start + (stop - start) // batch_size * batch_size if drop_last else stop
        return epoch_shares(order, self._read_window, batch_size, start=start, end=end,
                            rank=rank, world_size=world_size)

    def _read_window(self, chunk: np.ndarray) -> WindowReader:
        """A reader of the rows at positions ``chunk`` of this view (C,), in that order."""
        base = self._base_rows(chunk)
        assert isinstance(base, np.ndarray)
        return window_reader(base, self._dense, self._sparse, self._label, self._files,
                             bags=self._bags, weight=self._weight)
