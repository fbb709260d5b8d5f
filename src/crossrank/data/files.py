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
    """The file format: given, or from the extension (.tsv/.txt -> criteo)."""
    if fmt is not None:
        for known in get_args(Format):
            if fmt == known:
                return known
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    p = Path(str(path).rstrip("/*"))
    if p.is_dir():
        exts = {f.suffix.lower() for f in p.iterdir() if f.is_file()}
        suffix = exts.pop() if len(exts) == 1 else ""
    else:
        suffix = p.suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise ValueError(f"cannot tell the format of {path}; pass --format criteo|csv|parquet")
    return _BY_SUFFIX[suffix]
