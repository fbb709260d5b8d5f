"""One categorical field's values -> ids, by its vocabulary or by hashing.

Ids (see :mod:`crossrank.data.encoders`): 0 missing, 1 out of the vocabulary, 2 + position in
the vocabulary; hashed fields ``1 + stable_hash64(text) % buckets``. Values are read as text
(integers as their decimal text). Two ways, same ids:

* :func:`field_ids`, vectorised: the distinct values of the column (``dictionary_encode``) are
  looked up or hashed once each; a fixed cost of ~40 us a field and ~10 ns a row;
* :func:`few_field_ids`, value by value in Python (~2 us a value): for the few rows of a
  request being scored, where the vectorised path's fixed cost would dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.columns import as_text
from crossrank.data.hashing import stable_hash64, stable_hash64_one
from crossrank.data.vocabulary import MISSING_ID, Vocabulary

# at most this many rows are encoded value by value (few_field_ids)
FEW_ROWS = 8
# up to this many rows, hashed fields are encoded all at once (a request or a micro-batch;
# a file's 65,536-row chunks keep one field at a time, whose dictionaries stay small)
TOGETHER_ROWS = 8192


def ids_of_fields(columns: Sequence[pa.Array], vocabs: Sequence[Vocabulary | None],
                  hash_buckets: int | None, out: np.ndarray) -> None:
    """Every field's ids into ``out``: a few rows value by value (:func:`few_field_ids`), a
    request's hashed fields all at once (:func:`hashed_ids_of_fields`), else one field at a
    time (:func:`field_ids`); ``vocabs`` holds None for each field when hashing.

    Shape:
        F columns of (n,) -> ``out`` (n, F) int64.

    Example:
        >>> out = np.empty((2, 2), dtype=np.int64)
        >>> ids_of_fields([pa.array(["a", "b"]), pa.array([None, "a"])],
        ...               [Vocabulary(pa.array(["a"]))] * 2, None, out)
        >>> out.tolist()
        [[2, 0], [1, 2]]
    """
    n = len(columns[0]) if columns else 0
    if hash_buckets is not None and FEW_ROWS < n <= TOGETHER_ROWS:
        together = hashed_ids_of_fields(list(columns), hash_buckets)
        if together is not None:
            out[:] = together
            return
    # field by field into the rows of a (F, n) array, then one transposed copy: writing each
    # field as a strided column of (n, F) took 2-3x longer (~8% of encoding with a wide
    # multi-valued column, 2026-12-02)
    by_field = np.empty((len(columns), n), dtype=np.int64)
    for j, (values, vocab) in enumerate(zip(columns, vocabs, strict=True)):
        few = few_field_ids(values, vocab, hash_buckets) if n <= FEW_ROWS else None
        if few is None:
            field_ids(values, vocab, hash_buckets, out=by_field[j])
        else:
            by_field[j] = few
    out[:] = by_field.T


def field_ids(values: pa.Array, vocab: Vocabulary | None, hash_buckets: int | None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Ids of a column's values (``vocab`` or, when it is None, ``hash_buckets``), written
    into ``out`` when given (a contiguous (n,) int64 row: no temporary array).

    Shape:
        values (n,) -> (n,) int64.

    Example:
        >>> field_ids(pa.array(["b", None, "z"]), Vocabulary(pa.array(["a", "b"])), None).tolist()
        [3, 0, 1]
    """
    if pa.types.is_dictionary(values.type):
        encoded = values
    else:
        encoded = pc.dictionary_encode(as_text(values))
    uniques = as_text(encoded.dictionary)
    if vocab is None:
        assert hash_buckets is not None
        table = (stable_hash64(uniques) % np.uint64(hash_buckets)).astype(np.int64) + 1
    else:
        table = vocab.lookup(uniques)
    table = np.append(table, MISSING_ID)  # null codes point past the end -> MISSING_ID
    return np.take(table, encoded.indices.fill_null(len(uniques)).to_numpy(), out=out)


def few_field_ids(values: pa.Array, vocab: Vocabulary | None,
                  hash_buckets: int | None) -> np.ndarray | None:
    """:func:`field_ids` of a few text or integer values one by one; None for other types
    (booleans, dates...), which keep the vectorised path's text form.

    Example:
        >>> few_field_ids(pa.array([7, None]), Vocabulary(pa.array(["7"])), None).tolist()
        [2, 0]
    """
    t = values.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        return None
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.to_pylist()):
        if value is None:
            out[i] = MISSING_ID
            continue
        text = value if isinstance(value, str) else str(value)  # integers: decimal text
        if vocab is None:
            assert hash_buckets is not None
            out[i] = stable_hash64_one(text.encode("utf-8")) % hash_buckets + 1
        else:
            out[i] = vocab.lookup_one(text)
    return out


def hashed_ids_of_fields(columns: list[pa.Array], hash_buckets: int) -> np.ndarray | None:
    """:func:`field_ids` of every hashed field at once: the hashed ids do not depend on the
    field, so the fields' values are encoded and hashed together (one set of Arrow calls
    instead of one per field: what a request of a few hundred rows spends most on). None
    when the columns are not all plain text.

    Shape:
        F columns of (n,) -> (n, F) int64.

    Example:
        >>> ids = hashed_ids_of_fields([pa.array(["a", None]), pa.array(["a", "b"])], 10)
        >>> ids.shape, int(ids[1, 0]), bool(ids[0, 0] == ids[0, 1])  # missing: 0; same text
        ((2, 2), 0, True)
    """
    if not columns or any(not pa.types.is_string(c.type) for c in columns):
        return None
    n = len(columns[0])
    everything = pa.concat_arrays(columns)  # (F * n,) field after field
    encoded = pc.dictionary_encode(everything)
    uniques = encoded.dictionary
    table = (stable_hash64(uniques) % np.uint64(hash_buckets)).astype(np.int64) + 1
    table = np.append(table, MISSING_ID)  # null codes point past the end -> MISSING_ID
    ids = table[encoded.indices.fill_null(len(uniques)).to_numpy()]
    return np.ascontiguousarray(ids.reshape(len(columns), n).T)
