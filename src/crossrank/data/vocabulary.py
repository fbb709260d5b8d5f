"""One categorical field's vocabulary: its values in id order and a hash index from value to
id; and ``vocab.arrow``, the file that holds every field's vocabulary.

Ids (see :mod:`crossrank.data.encoders`): :data:`MISSING_ID` 0 for a missing value,
:data:`OOV_ID` 1 for a value out of the vocabulary, 2 + position for the vocabulary's values.
A lookup runs on distinct values: their :func:`~crossrank.data.hashing.stable_hash64` hashes
are found in the sorted hashes of the vocabulary (``numpy.searchsorted``) and each hit is
confirmed by exact string comparison, so it costs O(distinct * log V) whatever V.

``vocab.arrow`` is one Arrow IPC string column holding every field's values back to back in id
order (the encoder's JSON keeps their lengths): it loads memory-mapped in milliseconds where a
JSON list of millions of strings would take seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.hashing import stable_hash64, stable_hash64_one
from crossrank.errors import ModelFileError
from crossrank.safe_io import atomic_path

MISSING_ID = 0
OOV_ID = 1
_FEW_NEEDLES = 64  # fewer look-ups than this are not sorted first (the sort's fixed cost)


class Vocabulary:
    """Values of one field in id order (id = position + 2) and a hash index over them.

    Shape:
        lookup: distinct values (U,) -> ids (U,) int64.

    Example:
        >>> v = Vocabulary(pa.array(["a", "b"]))
        >>> v.lookup(pa.array(["b", "zz", "a"])).tolist(), len(v)
        ([3, 1, 2], 2)
    """

    def __init__(self, values: pa.Array) -> None:
        self.values = pc.cast(values, pa.string()) if values.type != pa.string() else values
        hashes = stable_hash64(self.values)
        self.order = np.argsort(hashes, kind="stable")
        self.sorted_hashes = hashes[self.order]
        # Two vocabulary values with one 64-bit hash (odds ~V^2 / 2^65) fall back to index_in.
        self.exact = bool(np.any(self.sorted_hashes[1:] == self.sorted_hashes[:-1]))

    def __len__(self) -> int:
        return len(self.values)

    def lookup_one(self, text: str) -> int:
        """The id of one value (what :meth:`lookup` gives it), without Arrow calls: for the
        few values of a row being scored.

        Example:
            >>> v = Vocabulary(pa.array(["a", "b"]))
            >>> v.lookup_one("b"), v.lookup_one("zz")
            (3, 1)
        """
        if len(self) == 0 or self.exact:
            return int(self.lookup(pa.array([text], pa.string()))[0])
        h = np.uint64(stable_hash64_one(text.encode("utf-8")))
        at = min(int(np.searchsorted(self.sorted_hashes, h)), len(self) - 1)
        candidate = int(self.order[at])
        if self.sorted_hashes[at] == h and self.values[candidate].as_py() == text:
            return candidate + 2
        return OOV_ID

    def lookup(self, uniques: pa.Array) -> np.ndarray:
        """Ids of distinct non-null values: vocabulary id or OOV."""
        if len(self) == 0 or len(uniques) == 0:
            return np.full(len(uniques), OOV_ID, dtype=np.int64)
        if self.exact:
            pos = pc.index_in(uniques, value_set=self.values).fill_null(-1).to_numpy()
            return np.where(pos >= 0, pos.astype(np.int64) + 2, OOV_ID)
        h = stable_hash64(uniques)
        at = np.minimum(_sorted_search(self.sorted_hashes, h), len(self) - 1)
        candidate = self.order[at]
        hit = self.sorted_hashes[at] == h
        if hit.any():  # confirm: equal hashes of different strings must not share an id
            same = pc.equal(self.values.take(pa.array(candidate)), uniques)
            hit &= same.fill_null(False).to_numpy(zero_copy_only=False)
        return np.where(hit, candidate + 2, OOV_ID).astype(np.int64)


def _sorted_search(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``np.searchsorted(haystack, needles)``, the needles searched in sorted order.

    numpy's binary search starts each needle from where the one before ended when they come
    in order; random needles in a vocabulary of 200,000 hashes miss the cache at every level
    (~200 ns a needle), sorted ones cost ~45 ns with the sort. A few needles search as given.

    Example:
        >>> _sorted_search(np.array([10, 20, 30]), np.array([25, 5, 30])).tolist()
        [2, 0, 2]
    """
    if len(needles) < _FEW_NEEDLES:
        return np.searchsorted(haystack, needles)
    order = np.argsort(needles)
    found = np.empty(len(needles), dtype=np.intp)
    found[order] = np.searchsorted(haystack, needles[order])
    return found


def select_vocabulary(counts: pa.Table, min_count: int,
                      max_size: int | None = None) -> Vocabulary:
    """The values of ``(value, count)`` seen at least ``min_count`` times, most frequent first
    (ties by value, so fitting is deterministic), at most ``max_size`` of them."""
    counts = counts.filter(pc.greater_equal(counts["count"], min_count))
    order = pc.sort_indices(counts, sort_keys=[("count", "descending"), ("value", "ascending")])
    values = counts["value"].take(order).combine_chunks()
    if max_size is not None:
        values = values.slice(0, max_size)
    return Vocabulary(values)


def saved_vocabularies(state: Mapping[str, Any], vocab: pa.Array | None,
                       fields: Sequence[str]) -> list[Vocabulary]:
    """The vocabularies of ``fields`` from an encoder's saved state: inline lists
    (``vocabularies``) or, with the vocabulary file's values ``vocab``, slices of it of the
    lengths in ``vocab_lengths``."""
    if vocab is None:
        if not fields:
            return []
        vocabs = state.get("vocabularies")
        if not isinstance(vocabs, dict) or set(vocabs) != set(fields):
            raise ValueError(f"vocabularies must map every field {tuple(fields)} to a list")
        return [Vocabulary(pa.array(vocabs[f], pa.string())) for f in fields]
    lengths = state["vocab_lengths"]
    if set(lengths) != set(fields) or sum(lengths.values()) != len(vocab):
        raise ValueError("vocab_lengths do not match the fields or the vocab file")
    found, start = [], 0
    for f in fields:
        found.append(Vocabulary(vocab.slice(start, lengths[f])))
        start += lengths[f]
    return found


def write_vocabularies(path: Path, vocabularies: Sequence[Vocabulary]) -> None:
    """Write every field's values back to back, in field and id order, to ``path`` (to a
    temporary name, then renamed)."""
    values = [v.values for v in vocabularies]
    flat = pa.concat_arrays(values) if values else pa.array([], pa.string())
    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_file(sink, pa.schema([("value", pa.string())])) as writer:
                writer.write_table(pa.table({"value": flat}))


def read_vocabularies(path: Path) -> pa.Array:
    """The values :func:`write_vocabularies` wrote, as one string array (memory-mapped).

    Example:
        >>> import tempfile, os
        >>> p = Path(tempfile.mkdtemp()) / "vocab.arrow"
        >>> write_vocabularies(p, [Vocabulary(pa.array(["a"])), Vocabulary(pa.array(["x", "y"]))])
        >>> read_vocabularies(p).to_pylist()
        ['a', 'x', 'y']
    """
    try:
        with pa.memory_map(str(path), "r") as source:
            vocab = pa.ipc.open_file(source).read_all().column("value").combine_chunks()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing") from None
    except (pa.ArrowException, KeyError) as err:  # not Arrow, cut short, no "value" column
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ModelFileError(f"{path}: not a readable vocabulary file, damaged or cut short "
                             f"({detail})") from None
    return vocab if len(vocab) else pa.array([], pa.string())
