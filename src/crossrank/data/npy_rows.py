"""Runs of rows of a .npy file, read with plain file reads into memory the caller owns.

Why not a memory mapping: every page a process touches through a mapping counts in its
resident set (RSS) until it is unmapped, and on current Linux a fault on a file page cached as
a large folio maps the whole folio (up to 2 MB). A shuffled window of 64 blocks then pins
64 x 2 MB per column file however small the blocks are, and the whole file once the data is
smaller than that: the peak RSS of an epoch grows with the file until it passes 100s of MB.
Reading the window's runs into one buffer bounds it by the bytes of the window's rows,
independent of the file system and the kernel, and costs one copy from the page cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NpyRows:
    """Where the rows of a C-ordered .npy file lie: dtype, shape and the data offset.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.npy")
        >>> np.save(p, np.arange(12, dtype=np.int32).reshape(6, 2))
        >>> NpyRows.of(p).read_runs(np.array([4, 0]), np.array([6, 1])).tolist()
        [[8, 9], [10, 11], [0, 1]]
    """

    path: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    @classmethod
    def of(cls, path: str | Path) -> NpyRows:
        """Read the header of the .npy file at ``path``."""
        path = Path(path)
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"{str(path)!r}: unsupported .npy version {version}")
            offset = fh.tell()
        if fortran and len(shape) > 1:
            raise ValueError(f"{str(path)!r}: Fortran-ordered arrays are not supported")
        if dtype.hasobject or not shape:
            raise ValueError(f"{str(path)!r}: need an array of rows without objects, got "
                             f"dtype {dtype} and shape {shape}")
        return cls(path, dtype, tuple(shape), offset)

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def read_runs(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """Rows ``starts[0]:stops[0]``, then ``starts[1]:stops[1]``, ... in one new array.

        Shape:
            starts, stops (R,) -> (sum(stops - starts), *shape[1:]).
        """
        starts = np.asarray(starts, dtype=np.int64)
        stops = np.asarray(stops, dtype=np.int64)
        lengths = stops - starts
        if len(starts) and (starts.min() < 0 or stops.max() > self.shape[0] or lengths.min() < 0):
            raise ValueError(f"{str(self.path)!r}: runs must lie in [0, {self.shape[0]}]")
        out = np.empty((int(lengths.sum()), *self.shape[1:]), dtype=self.dtype)
        raw = out.reshape(-1).view(np.uint8).data  # a writable memoryview of out's bytes
        row_bytes, at = self.row_bytes, 0
        # unbuffered: readinto fills our buffer straight from the page cache
        with open(self.path, "rb", buffering=0) as fh:
            for lo, n in zip(starts.tolist(), lengths.tolist()):
                end = at + n * row_bytes
                fh.seek(self.offset + lo * row_bytes)
                while at < end:
                    got = fh.readinto(raw[at:end])
                    if not got:
                        raise ValueError(f"{str(self.path)!r} is shorter than its header says")
                    at += got
        return out
