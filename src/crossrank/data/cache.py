"""Encoded binary cache: parse and encode text once, then train epochs from memory-mapped .npy.

A cache directory holds::

    manifest.json   {"format": "crossrank.EncodedDataset", "version": 1, "num_rows": ...,
                     "dense_names", "sparse_names", "vocab_sizes", "files": {...}}
    dense.npy       float32 (N, D_out)
    sparse.npy      int32 (N, F) when every vocab size fits in int32, else int64
    label.npy       float32 (N,)             (absent for unlabelled data)
    weight.npy      float32 (N,)             (only with a weight column)
    ids.npy         int64 or unicode (N,)    (only with an id column)
    multi{k}.values.npy, multi{k}.offsets.npy
                    multi-valued field k, jagged: int32 (or int64) element ids (E_k,) and int64
                    offsets (N+1,); row i is values[offsets[i]:offsets[i+1]] (manifest key
                    "multi_valued": name, width, size and the two files of each field)

The manifest is written last (to a temporary name, then renamed), so a cache cut short by a
crash does not open; the file names it holds are plain names in the cache directory. Files are plain
.npy (``numpy.load(..., mmap_mode="r")`` reads them); no pickle anywhere.

Reading a cache is :class:`~crossrank.data.dataset.EncodedDataset`'s (``EncodedDataset.open``).
:func:`concatenate_caches` joins caches encoded from consecutive parts of the data (one per
data-parallel rank) into the cache one process would have written, with sequential copies.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
from numpy.typing import DTypeLike

from crossrank.data.dataset import CACHE_FORMAT, CACHE_VERSION, EncodedDataset
from crossrank.data.encode_stream import encode_stream
from crossrank.data.encoders import FeatureEncoder
from crossrank.safe_io import atomic_write_text, read_json_object

_HEADER_BYTES = 128  # fixed .npy header size, so the row count can be written at the end
_FILES = ("manifest.json", "dense.npy", "sparse.npy", "label.npy", "ids.npy", "ids.tmp.arrow",
          "weight.npy")


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A .npy v1.0 header padded to exactly ``_HEADER_BYTES``."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = _HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"npy header for shape {shape} does not fit in {_HEADER_BYTES} bytes")
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class _NpyAppender:
    """Appends rows to a .npy file whose header (row count) is filled in on close."""

    def __init__(self, path: Path, dtype: DTypeLike, row_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), row_shape, 0
        self.file: IO[bytes] = path.open("wb")
        self.file.write(_npy_header(self.dtype, (0, *row_shape)))

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {values.shape[1:]}, "
                             f"expected {self.row_shape}")
        self.file.write(values.tobytes())
        self.rows += values.shape[0]

    def append_file(self, path: Path) -> None:
        """Append the rows of the .npy file at ``path`` (same dtype and row shape), copying
        its bytes in 1 MiB pieces."""
        with path.open("rb") as source:
            version = np.lib.format.read_magic(source)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(source)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(source)
            if dtype != self.dtype or tuple(shape[1:]) != self.row_shape or fortran:
                raise ValueError(f"{path}: {dtype} rows of shape {tuple(shape[1:])}, expected "
                                 f"{self.dtype} rows of shape {self.row_shape}")
            shutil.copyfileobj(source, self.file, 1 << 20)
        self.rows += shape[0]

    def close(self) -> None:
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
        self.file.close()


_MULTI = re.compile(r"multi\d+\.(values|offsets)\.npy")


def _is_cache_file(name: str) -> bool:
    """A cache's file, or one left at a temporary name by an interrupted write."""
    return name in _FILES or any(name.startswith(f".{f}.tmp") for f in _FILES) \
        or _MULTI.fullmatch(name) is not None


def _clear(cache_dir: Path, overwrite: bool) -> None:
    if cache_dir.exists():
        if not cache_dir.is_dir():
            raise ValueError(f"cache_dir {str(cache_dir)!r} exists and is not a directory")
        existing = sorted(p.name for p in cache_dir.iterdir())
        if existing and not overwrite:
            raise ValueError(
                f"cache_dir {str(cache_dir)!r} is not empty ({existing[:5]}); "
                "pass overwrite=True to replace a cache"
            )
        foreign = [n for n in existing if not _is_cache_file(n)]
        if foreign:
            raise ValueError(
                f"cache_dir {str(cache_dir)!r} holds files that are not a cache's: {foreign[:5]}"
            )
        # the manifest first, so a half-cleared cache never opens
        for name in sorted(existing, key=lambda n: n != "manifest.json"):
            (cache_dir / name).unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)


def encode_to_cache(
    tables: Iterable[pa.Table],
    encoder: FeatureEncoder,
    cache_dir: str | Path,
    *,
    overwrite: bool = False,
    workers: int | None = None,
) -> EncodedDataset:
    """Encode a stream of tables with a fitted ``encoder`` into ``cache_dir``.

    Args:
        tables: chunks, e.g. from :func:`~crossrank.data.readers.iter_tables`.
        encoder: a fitted :class:`FeatureEncoder`.
        cache_dir: directory to create (or an empty one).
        overwrite: replace an existing cache in ``cache_dir``.
        workers: threads that encode chunks while the calling thread reads the next ones and
            writes the last (:func:`~crossrank.data.encode_stream.encode_stream`; the cache is
            the same, byte for byte); 1: the calling thread alone; None: 2 or 1 by how busy
            the machine is (:func:`~crossrank.spare_cores.encoding_workers`).

    Returns:
        The cache, opened memory-mapped.
    """
    if not isinstance(encoder, FeatureEncoder):
        raise TypeError(f"encoder must be a FeatureEncoder, got {type(encoder).__name__}")
    if not encoder.is_fitted:
        raise ValueError("encoder must be fitted before encode_to_cache")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    cache_dir = Path(cache_dir)
    _clear(cache_dir, overwrite)
    sparse_dtype = np.int32 if max(encoder.vocab_sizes, default=0) <= 2**31 - 1 else np.int64
    dense = _NpyAppender(cache_dir / "dense.npy", np.float32, (len(encoder.dense_names),))
    num_fields = len(encoder.sparse_names)
    sparse = _NpyAppender(cache_dir / "sparse.npy", sparse_dtype, (num_fields,))
    lists = _JaggedAppenders(cache_dir, encoder.lists.sizes)
    label: _NpyAppender | None = None
    weight: _NpyAppender | None = None
    int_ids: _NpyAppender | None = None
    str_ids: pa.ipc.RecordBatchStreamWriter | None = None
    id_width = 1
    has_label: bool | None = None
    has_ids: bool | None = None
    try:
        for _, batch in encode_stream(tables, encoder, workers=workers, pad_lists=False):
            if has_label is None:
                has_label, has_ids = batch.label is not None, batch.ids is not None
                if batch.label is not None:
                    label = _NpyAppender(cache_dir / "label.npy", np.float32,
                                         tuple(batch.label.shape[1:]))  # (T,) multi-task
                if batch.weight is not None:
                    weight = _NpyAppender(cache_dir / "weight.npy", np.float32, ())
            if (batch.label is not None) != has_label or (batch.ids is not None) != has_ids or \
                    (batch.weight is not None) != (weight is not None):
                raise ValueError("every table must have the label, id and weight columns, or "
                                 "none must")
            if weight is not None and batch.weight is not None:
                weight.append(batch.weight)
            dense.append(batch.dense)
            sparse.append(batch.sparse)  # (B, F); multi-valued ids stored jagged below
            lists.append(batch.multi_valued)
            if label is not None and batch.label is not None:
                label.append(batch.label)
            if batch.ids is not None:
                if batch.ids.dtype.kind in "iu":
                    if str_ids is not None:
                        raise ValueError("the id column changes type between chunks")
                    if int_ids is None:
                        int_ids = _NpyAppender(cache_dir / "ids.npy", np.int64, ())
                    int_ids.append(batch.ids)
                else:
                    if int_ids is not None:
                        raise ValueError("the id column changes type between chunks")
                    if str_ids is None:
                        str_ids = pa.ipc.new_stream(
                            str(cache_dir / "ids.tmp.arrow"), pa.schema([("id", pa.string())])
                        )
                    id_width = max(id_width, batch.ids.dtype.itemsize // 4)
                    str_ids.write_table(pa.table({"id": pa.array(batch.ids, pa.string())}))
    finally:
        for appender in (dense, sparse, label, int_ids, weight, *lists.appenders):
            if appender is not None:
                appender.close()
        if str_ids is not None:
            str_ids.close()
    if str_ids is not None:
        _string_ids_to_npy(cache_dir, id_width, dense.rows)
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "num_rows": dense.rows,
        "dense_names": list(encoder.dense_names),
        "sparse_names": list(encoder.sparse_names),
        "vocab_sizes": list(encoder.vocab_sizes),
        "files": {
            "dense": "dense.npy",
            "sparse": "sparse.npy",
            "label": "label.npy" if label is not None else None,
            "ids": "ids.npy" if has_ids else None,
            **({"weight": "weight.npy"} if weight is not None else {}),
        },
    }
    if encoder.schema.multi_valued:
        manifest["multi_valued"] = _multi_valued_manifest(encoder)
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return EncodedDataset.open(cache_dir)


def _multi_valued_manifest(encoder: FeatureEncoder) -> list[dict[str, object]]:
    specs, lists = encoder.schema.multi_valued, encoder.lists
    return [{"name": spec.name, "width": width, "size": size,
             "values": f"multi{k}.values.npy", "offsets": f"multi{k}.offsets.npy"}
            for k, (spec, width, size) in enumerate(zip(specs, lists.widths, lists.sizes,
                                                        strict=True))]


class _JaggedAppenders:
    """The values and offsets files of each multi-valued field, appended chunk by chunk."""

    def __init__(self, cache_dir: Path, sizes: tuple[int, ...]) -> None:
        self.values = [_NpyAppender(cache_dir / f"multi{k}.values.npy",
                                    np.int32 if size <= 2**31 - 1 else np.int64, ())
                       for k, size in enumerate(sizes)]
        self.offsets = [_NpyAppender(cache_dir / f"multi{k}.offsets.npy", np.int64, ())
                        for k in range(len(sizes))]
        for o in self.offsets:
            o.append(np.zeros(1, np.int64))
        self.ends = [0] * len(sizes)  # elements written per field

    @property
    def appenders(self) -> list[_NpyAppender]:
        return self.values + self.offsets

    def append(self, bags: tuple[tuple[np.ndarray, np.ndarray], ...]) -> None:
        for k, (values, offsets) in enumerate(bags):
            self.values[k].append(values)
            self.offsets[k].append(offsets[1:] + self.ends[k])  # (n,) past this chunk's rows
            self.ends[k] += int(offsets[-1])


def _string_ids_to_npy(cache_dir: Path, width: int, rows: int) -> None:
    tmp = cache_dir / "ids.tmp.arrow"
    out = np.lib.format.open_memmap(
        cache_dir / "ids.npy", mode="w+", dtype=np.dtype(f"<U{width}"), shape=(rows,)
    )
    at = 0
    with pa.memory_map(str(tmp), "r") as source:
        for batch in pa.ipc.open_stream(source):
            values = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=out.dtype)
            out[at : at + len(values)] = values
            at += len(values)
    out.flush()
    del out
    tmp.unlink()


def concatenate_caches(
    parts: Sequence[str | Path], cache_dir: str | Path, *, overwrite: bool = False
) -> EncodedDataset:
    """One cache of the rows of ``parts`` (caches) one after another, written in ``cache_dir``.

    Parts encoded by one encoder from consecutive pieces of the data (each rank's files) give
    the cache :func:`encode_to_cache` writes from all of the data in that order, byte for byte.
    The rows are copied with sequential file reads and writes, a piece at a time: memory does
    not grow with the parts. Empty parts are left out (they may lack the label file).

    Shape:
        parts: caches of N_k rows -> a cache of sum_k N_k rows.

    Example:
        >>> import tempfile
        >>> from crossrank.data import FeatureEncoder, TableSchema
        >>> s = TableSchema(label="y", dense=("n",), categorical=("c",))
        >>> t = pa.table({"y": [1.0, 0.0, 1.0], "n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
        >>> enc = FeatureEncoder(s).fit([t])
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = encode_to_cache([t.slice(0, 1)], enc, d / "p0")
        >>> _ = encode_to_cache([t.slice(1)], enc, d / "p1")
        >>> ds = concatenate_caches([d / "p0", d / "p1"], d / "all")
        >>> ds.sparse.tolist(), ds.label.tolist()
        ([[2], [3], [2]], [1.0, 0.0, 1.0])
    """
    if isinstance(parts, str | Path) or not parts:
        raise ValueError(f"parts must be a non-empty sequence of cache directories, got {parts!r}")
    opened = [EncodedDataset.open(p) for p in parts]  # checks each manifest and its files
    metas = [read_json_object(Path(p) / "manifest.json") for p in parts]
    keys = ("dense_names", "sparse_names", "vocab_sizes")
    for path, meta in zip(parts[1:], metas[1:]):
        if any(meta[k] != metas[0][k] for k in keys):
            raise ValueError(f"cache {str(path)!r} has other columns or vocab sizes than "
                             f"{str(parts[0])!r}")
    full = [k for k, ds in enumerate(opened) if len(ds)] or [0]
    labels = {(metas[k]["files"]["label"] is None, metas[k]["files"].get("weight") is None)
              for k in full}
    id_kinds = {None if ids is None else ids.dtype.kind for ids in (opened[k].ids for k in full)}
    if len(labels) > 1 or len(id_kinds) > 1:
        raise ValueError("the parts differ in having a label or weights, or in the type of "
                         "their ids")
    cache_dir = Path(cache_dir)
    _clear(cache_dir, overwrite)
    first = opened[full[0]]
    files = dict(metas[full[0]]["files"])
    rows = 0
    for key in ("dense", "sparse", "label", "ids", "weight"):
        array = getattr(first, key)
        if files.get(key) is None or array is None:
            continue
        if array.dtype.kind == "U":  # widths differ between parts: convert, as encoding does
            rows = _join_string_ids([opened[k].ids for k in full], cache_dir / files[key])
            continue
        out = _NpyAppender(cache_dir / files[key], array.dtype, array.shape[1:])
        try:
            for k in full:
                out.append_file(Path(parts[k]) / files[key])
        finally:
            out.close()
        rows = out.rows
    for entry in metas[full[0]].get("multi_valued", []):
        _join_jagged([Path(parts[k]) for k in full], cache_dir, entry)
    manifest = {**metas[full[0]], "num_rows": rows}
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return EncodedDataset.open(cache_dir)


def _join_jagged(parts: list[Path], cache_dir: Path, entry: dict[str, str]) -> None:
    """One multi-valued field's files of the parts, joined: the values one after another, the
    offsets shifted past the earlier parts' values."""
    values_file = np.load(parts[0] / entry["values"], mmap_mode="r")
    values = _NpyAppender(cache_dir / entry["values"], values_file.dtype, ())
    offsets = _NpyAppender(cache_dir / entry["offsets"], np.int64, ())
    offsets.append(np.zeros(1, np.int64))
    end = 0
    try:
        for part in parts:
            values.append_file(part / entry["values"])
            own = np.load(part / entry["offsets"], mmap_mode="r")
            offsets.append(np.asarray(own[1:]) + end)
            end += int(own[-1])
    finally:
        values.close()
        offsets.close()


def _join_string_ids(parts: list[np.ndarray | None], path: Path, piece: int = 65536) -> int:
    width = max(a.dtype.itemsize // 4 for a in parts if a is not None)
    rows = sum(len(a) for a in parts if a is not None)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(f"<U{width}"), shape=(rows,))
    at = 0
    for a in parts:
        assert a is not None
        for i in range(0, len(a), piece):
            values = a[i:i + piece]
            out[at:at + len(values)] = values
            at += len(values)
    out.flush()
    del out
    return rows


def remove_cache(cache_dir: str | Path) -> None:
    """Delete a cache directory written by :func:`encode_to_cache` (and nothing else)."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / "manifest.json").is_file():
        raise ValueError(f"{str(cache_dir)!r} is not a cache directory (no manifest.json)")
    foreign = [p.name for p in cache_dir.iterdir() if not _is_cache_file(p.name)]
    if foreign:
        raise ValueError(f"{str(cache_dir)!r} holds files that are not a cache's: {foreign[:5]}")
    shutil.rmtree(cache_dir)
