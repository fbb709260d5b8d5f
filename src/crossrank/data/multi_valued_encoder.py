"""The vocabularies (or hashing) of a schema's multi-valued fields, for
:class:`~crossrank.data.encoders.FeatureEncoder`.

Each field has its own ids (its own embedding table): ``0`` missing (an empty list or a missing
value), ``1`` OOV (an element seen fewer than the field's ``min_count`` times), ``2+`` the
field's elements, most frequent first (ties by value); with ``hash_buckets=N``,
``1 + stable_hash64(element) % N``. Fitting counts the elements that encoding keeps (after the
``max_length`` cut), through the same :class:`~crossrank.data.fit_stats.FitStats` as the
categorical fields, so fitting in parts (files, ranks) gives the same vocabularies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.columns import column
from crossrank.data.fit_stats import FitStats
from crossrank.data.hashing import stable_hash64
from crossrank.data.multi_valued import MultiValuedSpec, encode_lists, split_lists
from crossrank.data.vocabulary import Vocabulary, select_vocabulary

Jagged = tuple[np.ndarray, np.ndarray]  # values (E,) int64, offsets (n+1,) int64


class MultiValuedEncoder:
    """Element ids of the multi-valued fields ``specs``.

    Example:
        >>> from crossrank.data.multi_valued import parse_multi_valued
        >>> enc = MultiValuedEncoder([parse_multi_valued("g:|")])
        >>> t = pa.table({"g": ["a|b", "a", None]})
        >>> enc.fit(FitStats.collect([enc.for_fit(t)], categorical=enc.vocab_fields))
        >>> [(v.tolist(), o.tolist()) for v, o in enc.transform(t)], enc.sizes
        ([([2, 3, 2, 0], [0, 2, 3, 4])], (4,))
    """

    def __init__(self, specs: Sequence[MultiValuedSpec]) -> None:
        self.specs = tuple(specs)
        self._vocabs: dict[str, Vocabulary] = {}

    @property
    def vocab_fields(self) -> tuple[str, ...]:
        """The fields with a learned vocabulary (not hashed), in schema order."""
        return tuple(s.name for s in self.specs if s.hash_buckets is None)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Ids per field, the reserved ones included."""
        return tuple(s.hash_buckets + 1 if s.hash_buckets is not None
                     else len(self._vocabs[s.name]) + 2 for s in self.specs)

    @property
    def widths(self) -> tuple[int, ...]:
        """Padded width of each field in the model's ids: its ``max_length``."""
        return tuple(s.max_length for s in self.specs)

    def vocabularies(self) -> list[Vocabulary]:
        """The vocabularies of :attr:`vocab_fields`, in that order."""
        return [self._vocabs[name] for name in self.vocab_fields]

    def set_vocabularies(self, vocabs: Sequence[Vocabulary]) -> None:
        """Install saved vocabularies (of :attr:`vocab_fields`, in order)."""
        if len(vocabs) != len(self.vocab_fields):
            raise ValueError(f"{len(vocabs)} vocabularies for multi-valued fields "
                             f"{self.vocab_fields}")
        self._vocabs = dict(zip(self.vocab_fields, vocabs, strict=True))

    def for_fit(self, table: pa.Table) -> pa.Table:
        """``table`` with each multi-valued column as the lists of elements encoding keeps
        (what :class:`~crossrank.data.fit_stats.FitStats` counts)."""
        for spec in self.specs:
            if spec.hash_buckets is not None:
                continue
            elements, counts = split_lists(column(table, spec.name), spec)
            offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
            lists = pa.ListArray.from_arrays(offsets, elements)
            table = table.set_column(table.column_names.index(spec.name), spec.name, lists)
        return table

    def fit(self, stats: FitStats) -> None:
        """Learn each vocabulary field's elements from merged statistics."""
        self._vocabs = {s.name: select_vocabulary(stats.value_counts(s.name), s.min_count)
                        for s in self.specs if s.hash_buckets is None}

    def transform(self, table: pa.Table) -> list[Jagged]:
        """Each field's jagged ids (see :func:`~crossrank.data.multi_valued.encode_lists`)."""
        out = []
        for spec in self.specs:
            elements, counts = split_lists(column(table, spec.name), spec)
            out.append(encode_lists(elements, counts, self._lookup(spec)))
        return out

    def _lookup(self, spec: MultiValuedSpec):  # type: ignore[no-untyped-def]
        if spec.hash_buckets is None:
            return self._vocabs[spec.name].lookup
        buckets = np.uint64(spec.hash_buckets)

        def hashed(uniques: pa.Array) -> np.ndarray:
            return (stable_hash64(pc.cast(uniques, pa.string())) % buckets).astype(np.int64) + 1
        return hashed
