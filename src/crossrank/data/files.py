"""Which files a data path names, and their format: the leaf every reader starts from."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal, get_args

Format = Literal["criteo", "csv", "parquet"]
FORMATS: tuple[str, ...] = get_args(Format)

# Criteo's own files are tab-separated text without a header.
_BY_SUFFIX: dict[str, Format] = {".tsv": "criteo", ".txt": "criteo", ".csv": "csv",
                                 ".parquet": "parquet", ".pq": "parquet"}
# Text compressed as a whole (pyarrow's codec names); Parquet compresses its own pages.
COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


def compression_of(path: str | Path) -> str | None:
    """How a file is compressed, from its last suffix (any case): gzip, bz2, zstd, lz4 or None.

    Example:
        >>> compression_of("day_0.tsv.GZ"), compression_of("x.csv.zst"), compression_of("a.csv")
        ('gzip', 'zstd', None)
    """
    return COMPRESSIONS.get(Path(path).suffix.lower())


def _format_suffix(path: Path) -> str:
    """The suffix that names the format: the last one, or the one before a compression's."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def list_shards(path: str | Path) -> list[Path]:
    """The files behind ``path``: itself, the visible files of a directory, or a glob's matches.

    Files whose names start with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are left out of a
    directory. The result is sorted by path, so shards are read in a fixed order.
    """
    if not isinstance(path, str | Path):
        raise TypeError(f"path must be a str or a Path, got {type(path).__name__}")
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_"))]
    elif any(ch in str(path) for ch in "*?["):
        files = [Path(f) for f in glob.glob(str(path)) if Path(f).is_file()]
    else:
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    if not files:
        raise FileNotFoundError(f"no data files in {str(path)!r}")
    return sorted(files)


def infer_format(path: str | Path, fmt: str | None) -> Format:
    """The file format: given, or from the extension (.tsv/.txt -> criteo), looking past a
    compression suffix (``day_0.tsv.gz`` -> criteo, ``x.csv.zst`` -> csv).

    Example:
        >>> infer_format("day_0.tsv.gz", None), infer_format("x.CSV.zst", None)
        ('criteo', 'csv')
    """
    if fmt is not None:
        for known in get_args(Format):
            if fmt == known:
                return known
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    p = Path(str(path).rstrip("/*"))
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith((".", "_"))]
        exts = {_format_suffix(f) for f in files}
        suffix = exts.pop() if len(exts) == 1 else ""
        compressed = any(compression_of(f) for f in files)
    else:
        suffix = _format_suffix(p)
        compressed = compression_of(p) is not None
    if suffix not in _BY_SUFFIX:
        raise ValueError(f"cannot tell the format of {path}; pass --format criteo|csv|parquet")
    if compressed and _BY_SUFFIX[suffix] == "parquet":
        raise ValueError(f"{path}: Parquet cannot be read through whole-file compression "
                         "(Parquet compresses its own pages); decompress it first")
    return _BY_SUFFIX[suffix]
