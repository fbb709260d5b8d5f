"""The order of an epoch: every row exactly once, shuffled in bounded memory.

A full permutation of N rows costs N int64 (80 MB for 10M rows) and sends every batch's reads
all over the file, so the pages a shuffled epoch touches grow with the data. The *windowed block
shuffle* bounds both:

1. positions ``0..N-1`` are cut into blocks of ``block_rows`` consecutive rows (the last block
   may be shorter);
2. the block order is ``numpy.random.default_rng(seed).permutation(num_blocks)``: N /
   ``block_rows`` numbers (2,442 for 10M rows);
3. consecutive runs of ``window_blocks`` blocks of that order form the windows, and the rows of
   window k are shuffled together by a generator of their own, seeded with ``(seed, k)``, so
   that any window can be drawn without the windows before it (resume mid-epoch, sharding).

The epoch is window 0, then window 1, ...: each row exactly once, the same order for the same
seed and parameters, and one window of positions (``block_rows * window_blocks`` int64) in
memory at a time. A batch's rows come from ``window_blocks`` blocks spread over the whole file,
and each row's window is uniform over the epoch; what a full permutation adds is only that rows
of one block can meet in one batch more often. When N fits in one window the order is exactly
``default_rng(seed).permutation(N)``, so small data is shuffled as before.

Without shuffling the windows are consecutive ranges of ``block_rows * window_blocks`` rows,
in order (the reader releases its pages window by window either way).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_BLOCK_ROWS = 4096
DEFAULT_WINDOW_BLOCKS = 64  # 262,144 rows a window: ~40 MB of Criteo-shaped encoded rows


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class EpochOrder:
    """The positions of one epoch, window by window (see the module docstring).

    Args:
        num_rows: N, the rows to order.
        shuffle: windowed block shuffle when True, else ``0..N-1``.
        seed: the epoch's seed (``base_seed + epoch`` for a new order every epoch).
        block_rows: rows per block.
        window_blocks: blocks per window.

    Shape:
        :meth:`window` (rows of window k,) int64; :meth:`chunks` yields pieces whose
        concatenation is :meth:`to_array`, (N,) int64, a permutation of ``0..N-1``.

    Example:
        >>> order = EpochOrder(10, shuffle=True, seed=0, block_rows=2, window_blocks=2)
        >>> order.num_windows, [len(order.window(k)) for k in range(3)]
        (3, [4, 4, 2])
        >>> sorted(order.to_array().tolist()) == list(range(10))
        True
        >>> EpochOrder(4, shuffle=False).to_array().tolist()
        [0, 1, 2, 3]
    """

    def __init__(self, num_rows: int, *, shuffle: bool, seed: int = 0,
                 block_rows: int = DEFAULT_BLOCK_ROWS,
                 window_blocks: int = DEFAULT_WINDOW_BLOCKS) -> None:
        if isinstance(num_rows, bool) or not isinstance(num_rows, int | np.integer) or num_rows < 0:
            raise ValueError(f"num_rows must be a non-negative int, got {num_rows!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed!r}")
        self.num_rows, self.shuffle, self.seed = int(num_rows), shuffle, int(seed)
        self.block_rows = _positive_int("block_rows", block_rows)
        self.window_blocks = _positive_int("window_blocks", window_blocks)
        n, window_rows = self.num_rows, self.block_rows * self.window_blocks
        self._blocks: np.ndarray | None = None  # the permuted block ids, when windowed
        if not shuffle or n <= window_rows:
            # consecutive windows of window_rows positions (one window when shuffled)
            size = window_rows if not shuffle else max(n, 1)
            self._offsets = np.minimum(np.arange(0, n + size, size), n)
            if n == 0:
                self._offsets = np.zeros(1, dtype=np.int64)
            return
        num_blocks = -(-n // self.block_rows)
        self._blocks = np.random.default_rng(self.seed).permutation(num_blocks)  # (num_blocks,)
        sizes = self._block_sizes(self._blocks)
        per_window = np.add.reduceat(sizes, np.arange(0, num_blocks, self.window_blocks))
        self._offsets = np.concatenate([[0], np.cumsum(per_window)])

    def _block_sizes(self, blocks: np.ndarray) -> np.ndarray:
        return np.minimum(self.block_rows, self.num_rows - blocks * self.block_rows)

    def __len__(self) -> int:
        return self.num_rows

    @property
    def num_windows(self) -> int:
        return len(self._offsets) - 1

    @property
    def offsets(self) -> np.ndarray:
        """Where each window starts in the epoch, and N at the end. Shape: (num_windows + 1,)."""
        return self._offsets.copy()

    def window(self, k: int) -> np.ndarray:
        """The positions of window ``k``, in epoch order. Shape: (rows of window k,) int64."""
        if not 0 <= k < self.num_windows:
            raise ValueError(f"window must be in [0, {self.num_windows}), got {k!r}")
        lo, hi = int(self._offsets[k]), int(self._offsets[k + 1])
        if not self.shuffle:
            return np.arange(lo, hi, dtype=np.int64)
        if self._blocks is None:
            return np.random.default_rng(self.seed).permutation(self.num_rows)
        blocks = self._blocks[k * self.window_blocks:(k + 1) * self.window_blocks]
        sizes = self._block_sizes(blocks)
        # the rows of the window's blocks, block after block: a running index shifted to
        # each block's first row
        starts_in_window = np.cumsum(sizes) - sizes
        rows = np.arange(hi - lo, dtype=np.int64) + np.repeat(
            blocks * self.block_rows - starts_in_window, sizes)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(k,)))
        rng.shuffle(rows)
        return rows

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Positions ``start:stop`` of the epoch, one window (or the part of it) at a time."""
        n = self.num_rows
        stop = n if stop is None else stop
        if not (0 <= start <= stop <= n):
            raise ValueError(f"need 0 <= start <= stop <= {n}, got start={start}, stop={stop}")
        if start == stop:
            return
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        for k in range(first, self.num_windows):
            lo = int(self._offsets[k])
            if lo >= stop:
                break
            yield self.window(k)[max(start - lo, 0):stop - lo]

    def to_array(self) -> np.ndarray:
        """The whole epoch's order at once (O(N) memory: for tests and small data)."""
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
