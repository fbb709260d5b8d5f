"""Multi-valued fields: a list of categorical values per row (genres, tags, recent items).

Declared, never inferred, by a spec string ``NAME:SEP[:KEY=VALUE]...`` (``--multi-valued``,
``schema.multi_valued``), e.g. ``genres:|`` or ``history:comma:pooling=mean:max_length=20:
keep=last``. ``SEP`` is the text between the elements of a joined string (``comma``,
``space``, ``tab``, ``pipe``, ``semicolon`` and ``colon`` name those characters); a Parquet
``list<string>`` or ``list<int>`` column needs no separator but takes one all the same. A config
file may give a table per field instead (:func:`spec_texts`)::

    [schema.multi_valued.history]
    separator = " "
    pooling = "mean"
    keep = "last"

Keys:

* ``pooling``: ``sum`` (default), ``mean`` or ``max`` of the elements' embeddings;
* ``max_length``: at most this many elements per row (default 50), the ``keep`` end;
* ``keep``: ``first`` (default) or ``last`` (a "last N items" history keeps the most recent);
* ``min_count``: elements seen fewer times while fitting map to the OOV id (default 1);
* ``hash_buckets``: hash elements into this many buckets instead of a vocabulary.

Encoding rules (:func:`encode_lists`), vectorized with Arrow's kernels (``split_pattern``,
``list_flatten``, ``dictionary_encode``), never a Python loop over rows:

* empty elements (``a||b``) and null elements are dropped;
* duplicates are kept: ``a|a`` is two elements, counted twice by ``sum``;
* an empty list, an empty string and a missing value become one element, the missing id 0;
* element ids follow the categorical rules: 0 missing, 1 OOV, 2+ vocabulary (or hashed);
* a row with more than :data:`MAX_LIST_LENGTH` elements is a bad row (``list_too_long``).

Each row's ids are stored jagged (``values`` and ``offsets``: row i is
``values[offsets[i]:offsets[i+1]]``) and handed to models padded to ``max_length`` columns with
``-1`` (:func:`pad_lists`), the form :class:`~crossrank.layers.BagEmbedding` pools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.errors import ModelFileError
from crossrank.safe_io import plain_name

__all__ = ["KEEPS", "MAX_LIST_LENGTH", "POOLINGS", "MultiValuedSpec", "as_text_lists",
           "encode_lists", "pad_lists", "parse_multi_valued", "split_lists", "write_padded"]

POOLINGS: tuple[str, ...] = ("sum", "mean", "max")
KEEPS: tuple[str, ...] = ("first", "last")
MAX_LIST_LENGTH = 10_000  # elements in one row's list; more is a bad row
PAD_ID = -1  # the padding of padded ids: no element
_SEPARATORS = {"comma": ",", "space": " ", "tab": "\t", "pipe": "|", "semicolon": ";",
               "colon": ":"}


@dataclass(frozen=True)
class MultiValuedSpec:
    """One multi-valued field: its column, how its text splits, how it is encoded and pooled.

    Example:
        >>> s = parse_multi_valued("history:comma:pooling=mean:max_length=3:keep=last")
        >>> s.separator, s.pooling, s.max_length, s.keep
        (',', 'mean', 3, 'last')
        >>> parse_multi_valued(s.to_text()) == s
        True
    """

    name: str
    separator: str = "|"
    pooling: str = "sum"
    max_length: int = 50
    keep: str = "first"
    min_count: int = 1
    hash_buckets: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a multi-valued field needs a column name, got {self.name!r}")
        if not isinstance(self.separator, str) or not self.separator:
            raise ValueError(f"multi-valued {self.name!r}: the separator must be non-empty text, "
                             f"got {self.separator!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"multi-valued {self.name!r}: pooling must be one of {POOLINGS}, "
                             f"got {self.pooling!r}")
        if self.keep not in KEEPS:
            raise ValueError(f"multi-valued {self.name!r}: keep must be one of {KEEPS}, "
                             f"got {self.keep!r}")
        for key, low, high in (("max_length", 1, MAX_LIST_LENGTH), ("min_count", 1, None),
                               ("hash_buckets", 2, None)):
            value = getattr(self, key)
            if value is None and key == "hash_buckets":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low \
                    or (high is not None and value > high):
                top = f" and <= {high}" if high is not None else ""
                raise ValueError(f"multi-valued {self.name!r}: {key} must be an int >= {low}"
                                 f"{top}, got {value!r}")
        if self.hash_buckets is not None and self.min_count != 1:
            raise ValueError(f"multi-valued {self.name!r}: hash_buckets replaces the vocabulary; "
                             f"leave min_count=1, got {self.min_count!r}")

    def to_text(self) -> str:
        """The spec string :func:`parse_multi_valued` reads back."""
        sep = next((k for k, v in _SEPARATORS.items() if v == self.separator), self.separator)
        parts = [self.name, sep]
        default = MultiValuedSpec(self.name)
        for key in ("pooling", "max_length", "keep", "min_count", "hash_buckets"):
            if getattr(self, key) != getattr(default, key):
                parts.append(f"{key}={getattr(self, key)}")
        return ":".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultiValuedSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown multi-valued keys {unknown}; known keys are "
                             f"{sorted(known)}")
        return cls(**d)


def parse_multi_valued(text: str) -> MultiValuedSpec:
    """A spec string ``NAME:SEP[:KEY=VALUE]...`` (see the module doc) as a spec.

    Example:
        >>> parse_multi_valued("genres:|")
        MultiValuedSpec(name='genres', separator='|', pooling='sum', max_length=50, \
keep='first', min_count=1, hash_buckets=None)
    """
    if not isinstance(text, str):
        raise TypeError(f"a multi-valued spec must be text, got {text!r}")
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"multi-valued spec {text!r} must read NAME:SEPARATOR[:KEY=VALUE]..., "
                         "e.g. 'genres:|' or 'history:comma:pooling=mean:max_length=20'")
    values: dict[str, Any] = {"name": parts[0], "separator": _SEPARATORS.get(parts[1], parts[1])}
    for part in parts[2:]:
        key, eq, value = part.partition("=")
        if not eq or key not in ("pooling", "max_length", "keep", "min_count", "hash_buckets"):
            raise ValueError(f"multi-valued spec {text!r}: {part!r} is not KEY=VALUE with KEY one "
                             "of pooling, max_length, keep, min_count, hash_buckets")
        if key in ("max_length", "min_count", "hash_buckets"):
            try:
                values[key] = int(value)
            except ValueError:
                raise ValueError(f"multi-valued spec {text!r}: {key} must be an integer, got "
                                 f"{value!r}") from None
        else:
            values[key] = value
    return MultiValuedSpec(**values)


def spec_texts(value: Any) -> Any:
    """A config file's ``multi_valued`` as spec strings: a table per field (keyed by column
    name, or a list of tables with ``name``) or spec strings as they are; other values are
    returned unchanged for the option's own type check.

    Example:
        >>> spec_texts({"genres": {"separator": "|", "pooling": "mean"}})
        ['genres:pipe:pooling=mean']
        >>> spec_texts([{"name": "tags", "separator": ","}, "history:space"])
        ['tags:comma', 'history:space']
    """
    if isinstance(value, Mapping):
        value = [{"name": name, **table} if isinstance(table, Mapping) else table
                 for name, table in value.items()]
        if any(not isinstance(item, Mapping) for item in value):
            raise ValueError("a table of multi-valued fields holds one table per column name, "
                             "e.g. [schema.multi_valued.genres] separator = \"|\"")
    if not isinstance(value, list):
        return value
    return [MultiValuedSpec.from_dict(item).to_text() if isinstance(item, Mapping) else item
            for item in value]


def _lists(values: pa.Array, separator: str) -> pa.Array:
    """The column as a list array (text split at ``separator``; lists as they are)."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_large_list(values.type):
        values = pc.cast(values, pa.list_(values.type.value_type))
    if pa.types.is_list(values.type):
        return values
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())  # integers: one element each
    return pc.split_pattern(values, separator)


def as_text_lists(values: pa.Array, separator: str) -> pa.Array:
    """The column as ``list<string>``, split as encoding splits it (texts at ``separator``,
    integers as their decimal text), so joined texts and lists of one column concatenate.

    Example:
        >>> as_text_lists(pa.array(["a|b", None, ""]), "|").to_pylist()
        [['a', 'b'], None, ['']]
    """
    lists = _lists(values, separator)
    wanted = pa.list_(pa.string())
    return lists if lists.type == wanted else pc.cast(lists, wanted)


def list_lengths(values: pa.Array, separator: str) -> np.ndarray:
    """Elements per row before any is dropped (nulls count 0), for the length limit.

    Shape:
        values (n,) -> (n,) int64.

    Example:
        >>> list_lengths(pa.array(["a|b", None, "", "c"]), "|").tolist()
        [2, 0, 1, 1]
    """
    if pa.types.is_string(values.type):  # text: count the separators, no split needed
        found = pc.count_substring(values, separator)
        return (found.fill_null(-1).to_numpy(zero_copy_only=False) + 1).astype(np.int64)
    return pc.list_value_length(_lists(values, separator)).fill_null(0).to_numpy(
        zero_copy_only=False).astype(np.int64)


def split_lists(values: pa.Array, spec: MultiValuedSpec) -> tuple[pa.Array, np.ndarray]:
    """Each row's elements as text, empty and null elements dropped, cut to ``max_length``.

    Returns:
        The elements of every row one after another (``string``) and each row's count.

    Shape:
        values (n,) -> elements (sum of counts,), counts (n,) int64.

    Example:
        >>> spec = MultiValuedSpec("g", max_length=2, keep="last")
        >>> e, n = split_lists(pa.array(["a|b|c", None, "", "d||d"]), spec)
        >>> e.to_pylist(), n.tolist()
        (['b', 'c', 'd', 'd'], [2, 0, 0, 2])
    """
    lists = _lists(values, spec.separator)
    n = len(lists)
    counts = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    counts = counts.astype(np.int64)
    flat = pc.list_flatten(lists)  # null lists contribute nothing
    if not (pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type)):
        if pa.types.is_floating(flat.type):
            raise TypeError(f"multi-valued {spec.name!r} holds floats ({flat.type}); store ids "
                            "as integers or text so they stay exact")
        flat = pc.cast(flat, pa.string())
    keep = pc.and_(pc.is_valid(flat), pc.greater(pc.binary_length(flat), 0)).fill_null(False)
    if not pc.all(keep).as_py():  # empty or null elements: drop them, recount the rows
        rows = np.repeat(np.arange(n), counts)  # (elements,) the row of each element
        counts = np.bincount(rows[keep.to_numpy(zero_copy_only=False)], minlength=n)
        counts = counts.astype(np.int64)
        flat = flat.filter(keep)
    if n and int(counts.max()) > spec.max_length:  # cut each row to its kept end
        offsets = np.concatenate([[0], np.cumsum(counts)])
        kept = np.minimum(counts, spec.max_length)
        first = offsets[:-1] + (counts - kept if spec.keep == "last" else 0)  # (n,)
        starts = np.concatenate([[0], np.cumsum(kept)])[:-1]
        within = np.arange(int(kept.sum())) - np.repeat(starts, kept)
        flat = flat.take(pa.array(np.repeat(first, kept) + within, pa.int64()))
        counts = kept
    return flat, counts


def encode_lists(elements: pa.Array, counts: np.ndarray,
                 element_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Jagged ids of :func:`split_lists` output; ``element_ids(uniques) -> ids`` maps distinct
    element texts to ids (a vocabulary's lookup or a hash). A row without elements gets one,
    the missing id 0.

    Shape:
        elements (E,), counts (n,) -> values (E',) int64, offsets (n+1,) int64.

    Example:
        >>> ids = lambda u: np.arange(2, 2 + len(u))
        >>> v, o = encode_lists(pa.array(["x", "y", "x"]), np.array([2, 0, 1]), ids)
        >>> v.tolist(), o.tolist()
        ([2, 3, 0, 2], [0, 2, 3, 4])
    """
    encoded = pc.dictionary_encode(elements)
    table = np.asarray(element_ids(encoded.dictionary), dtype=np.int64)
    ids = table[encoded.indices.to_numpy(zero_copy_only=False)] if len(elements) else \
        np.zeros(0, np.int64)
    out_counts = np.maximum(counts, 1)
    offsets = np.concatenate([[0], np.cumsum(out_counts)]).astype(np.int64)
    if len(ids) == offsets[-1]:  # no empty row
        return ids.astype(np.int64, copy=False), offsets
    values = np.zeros(int(offsets[-1]), dtype=np.int64)  # MISSING_ID where a row is empty
    values[np.repeat(offsets[:-1], counts) + _within(counts)] = ids
    return values, offsets


def _within(lengths: np.ndarray) -> np.ndarray:
    """Each element's position in its row. Shape: lengths (n,) -> (sum lengths,)."""
    starts = np.concatenate([[0], np.cumsum(lengths)])[:-1]
    return np.arange(int(lengths.sum())) - np.repeat(starts, lengths)


def pad_lists(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray | None,
              width: int) -> np.ndarray:
    """Rows of a jagged field as a ``(n, width)`` matrix padded with -1 (rows longer than
    ``width`` raise: the encoder never writes them).

    Shape:
        values (E,), offsets (N+1,), rows (n,) or None (every row) -> (n, width) int64.

    Example:
        >>> pad_lists(np.array([5, 6, 7]), np.array([0, 2, 3]), np.array([1, 0]), 3).tolist()
        [[7, -1, -1], [5, 6, -1]]
    """
    n = len(offsets) - 1 if rows is None else len(rows)
    out = np.empty((n, width), dtype=np.int64)
    write_padded(out, 0, [(values, offsets)], [width], rows)
    return out


def write_padded(out: np.ndarray, first: int, bags: Sequence[tuple[np.ndarray, np.ndarray]],
                 widths: Sequence[int], rows: np.ndarray | None = None) -> None:
    """Write each jagged field's rows, padded with -1 to its width, into the columns of
    ``out`` from ``first`` on, field after field.

    Written in place because the padded matrix is most of an encoded chunk's memory (65,536
    rows x 50 columns of int64: 26 MB): building it apart and concatenating it to the
    categorical ids copied it twice, and every fresh large array is zeroed by the kernel.

    Shape:
        out (n, C) int64 C-contiguous, values (E,), offsets (N+1,), rows (n,) or None (every
        row); fills out[:, first:first + sum(widths)].
    """
    if not out.flags.c_contiguous:
        raise ValueError("write_padded needs a C-contiguous matrix")
    n, stride = out.shape
    flat = out.reshape(-1)
    col = first
    for (values, offsets), width in zip(bags, widths, strict=True):
        out[:, col:col + width] = PAD_ID
        if n:
            start = np.asarray(offsets[:-1] if rows is None else offsets[rows], dtype=np.int64)
            stop = offsets[1:] if rows is None else offsets[np.asarray(rows) + 1]
            lengths = np.asarray(stop, dtype=np.int64) - start
            if int(lengths.max()) > width:
                raise ValueError(f"a row has {int(lengths.max())} elements, more than the "
                                 f"width {width}")
            within = _within(lengths)
            if rows is None:  # consecutive rows: one slice of the values
                elements = values[int(offsets[0]):int(offsets[-1])]
            else:
                elements = values[np.repeat(start, lengths) + within]
            row_start = np.arange(col, n * stride, stride, dtype=np.int64)  # (n,)
            flat[np.repeat(row_start, lengths) + within] = elements
        col += width


def join_padded(sparse: np.ndarray, bags: Sequence[tuple[np.ndarray, np.ndarray]],
                widths: Sequence[int], rows: np.ndarray | None = None) -> np.ndarray:
    """``sparse`` (n, F) with each jagged field's rows padded after it: (n, F + sum widths)."""
    if not bags:
        return sparse
    n, f = sparse.shape
    out = np.empty((n, f + sum(widths)), dtype=np.int64)
    out[:, :f] = sparse
    write_padded(out, f, bags, widths, rows)
    return out


def open_cached_lists(meta: dict[str, Any], cache_dir: Path, manifest: Path,
                      rows: int) -> tuple[tuple[np.ndarray, np.ndarray, int], ...]:
    """A cache's multi-valued fields (values, offsets, width), memory-mapped."""
    entries = meta.get("multi_valued", [])
    if not isinstance(entries, list):
        raise ModelFileError(f"{manifest}: key 'multi_valued' must be a list")
    bags = []
    for k, entry in enumerate(entries):
        where = f"multi_valued[{k}]"
        values = np.load(cache_dir / plain_name(entry["values"], source=manifest,
                                                key=f"{where}.values"), mmap_mode="r")
        offsets = np.load(cache_dir / plain_name(entry["offsets"], source=manifest,
                                                 key=f"{where}.offsets"), mmap_mode="r")
        if len(offsets) != rows + 1 or (rows and int(offsets[-1]) != len(values)):
            raise ModelFileError(f"{manifest}: {where} ({entry['name']!r}) has "
                                 f"{len(offsets) - 1} rows of {int(offsets[-1])} elements, the "
                                 f"cache {rows} rows and {len(values)} elements")
        bags.append((values, offsets, int(entry["width"])))
    return tuple(bags)
