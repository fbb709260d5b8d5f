"""Feature encoding: raw columns -> a float32 dense matrix and int64 categorical ids.

Dense features (D of them, plus D missing indicators when asked)::

    log1p:        x' = log(1 + max(x, 0))
    standardize:  x' = (x - mean) / std        (mean, std of the non-missing training values)
    none:         x' = x
    missing x  -> x' = 0 (after the transform); indicator = 1 if missing else 0

Null and NaN both mean missing; an infinite value is an error.

Categorical fields (F of them) map each value to an id in ``[0, vocab_size)``::

    id 0  missing value (null)                     (both modes)
    id 1  out of vocabulary: unseen at fit time or seen fewer than ``min_count`` times
    id 2+ vocabulary, most frequent first (ties broken by value, so fitting is deterministic)
    hash mode (``hash_buckets=N``): id = 1 + stable_hash64(value) % N, so vocab_size = N + 1

Values are hashed as UTF-8 text (integers as their decimal text) with
:func:`~crossrank.data.hashing.stable_hash64`. Transform never fails on an unseen or missing
value. The mapping runs on the distinct values of a chunk (``dictionary_encode``), looked up in
the field's :class:`~crossrank.data.vocabulary.Vocabulary` by hash, so it costs
O(distinct * log V) per chunk whatever the vocabulary size V.

Fitting is one implementation in two steps: :meth:`FeatureEncoder.partial_fit` collects
:class:`~crossrank.data.fit_stats.FitStats` (value counts, exact dense sums) from a stream and
:meth:`FeatureEncoder.fit_from_stats` learns from the merged statistics of any number of parts;
:meth:`FeatureEncoder.fit` is the two on one stream. Parts fitted apart (files, data-parallel
ranks) give exactly the encoder of one fit over all of them.

Persistence, no pickle: :meth:`FeatureEncoder.to_dict` is plain JSON (vocabularies inline, for
small ones); :meth:`FeatureEncoder.save` writes ``encoder.json`` plus ``vocab.arrow``, one Arrow
IPC string column holding every field's vocabulary back to back in id order (their lengths are
in the JSON; see :mod:`crossrank.data.vocabulary`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from crossrank.data.columns import as_float64, column, row_labels, row_weights
from crossrank.data.encoded_batch import EncodedBatch
from crossrank.data.field_ids import ids_of_fields
from crossrank.data.fit_stats import FitStats
from crossrank.data.multi_valued import write_padded
from crossrank.data.multi_valued_encoder import MultiValuedEncoder
from crossrank.data.oov_share import expected_shares
from crossrank.data.schema import TableSchema
from crossrank.data.vocabulary import (
    MISSING_ID,
    OOV_ID,
    Vocabulary,
    read_vocabularies,
    saved_vocabularies,
    select_vocabulary,
    write_vocabularies,
)
from crossrank.safe_io import atomic_write_text, file_error, plain_name, read_json_object

__all__ = ["DENSE_TRANSFORMS", "MISSING_ID", "OOV_ID", "DenseTransform", "EncodedBatch",
           "FeatureEncoder"]

DenseTransform = Literal["log1p", "standardize", "none"]
DENSE_TRANSFORMS: tuple[str, ...] = ("log1p", "standardize", "none")
_FORMAT = "crossrank.FeatureEncoder"
_VERSION = 1


class FeatureEncoder:
    """Learns dense statistics and categorical vocabularies on training data; encodes chunks.

    Args:
        schema: the columns to encode.
        dense_transform: ``"log1p"``, ``"standardize"`` or ``"none"`` (see the module docstring).
        missing_indicator: add one 0/1 column per dense feature, 1 where the value is missing.
        min_count: values seen fewer times while fitting map to the OOV id.
        max_vocab_size: keep at most this many values per field (the most frequent).
        hash_buckets: hash values into this many buckets instead of learning a vocabulary.

    Shape:
        transform: table of B rows -> dense (B, D_out), sparse (B, F), with
        D_out = D * (2 if missing_indicator else 1).

    Example:
        >>> s = TableSchema(label="y", dense=("n",), categorical=("c",))
        >>> t = pa.table({"y": [1.0, 0.0, 1.0], "n": [0.0, None, np.e - 1],
        ...               "c": ["a", "b", "a"]})
        >>> enc = FeatureEncoder(s, missing_indicator=True, min_count=2).fit([t])
        >>> b = enc.transform(pa.table({"n": [1.0], "c": ["a"]}))
        >>> b.sparse.tolist(), enc.vocab_sizes, enc.dense_names
        ([[2]], (3,), ('n', 'n_missing'))
        >>> enc.transform(t).dense.round(3).tolist()
        [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
        >>> enc.transform(t).sparse[:, 0].tolist()  # "b" was seen once: OOV
        [2, 1, 2]
    """

    def __init__(
        self,
        schema: TableSchema,
        *,
        dense_transform: DenseTransform = "log1p",
        missing_indicator: bool = False,
        min_count: int = 1,
        max_vocab_size: int | None = None,
        hash_buckets: int | None = None,
    ) -> None:
        if not isinstance(schema, TableSchema):
            raise TypeError(f"schema must be a TableSchema, got {type(schema).__name__}")
        if dense_transform not in DENSE_TRANSFORMS:
            raise ValueError(
                f"dense_transform must be one of {DENSE_TRANSFORMS}, got {dense_transform!r}"
            )
        if not isinstance(missing_indicator, bool):
            raise TypeError(f"missing_indicator must be a bool, got {missing_indicator!r}")
        for arg, value, optional in (("min_count", min_count, False), ("max_vocab_size",
                                     max_vocab_size, True), ("hash_buckets", hash_buckets, True)):
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive int, got {value!r}")
        if hash_buckets is not None and (min_count != 1 or max_vocab_size is not None):
            raise ValueError(
                "hash_buckets replaces the vocabulary: leave min_count=1 and max_vocab_size=None, "
                f"got min_count={min_count!r}, max_vocab_size={max_vocab_size!r}"
            )
        self.schema = schema
        self.dense_transform = dense_transform
        self.missing_indicator = missing_indicator
        self.min_count = min_count
        self.max_vocab_size = max_vocab_size
        self.hash_buckets = hash_buckets
        self.num_rows_fit = 0
        self._mean = np.zeros(len(schema.dense))
        self._std = np.ones(len(schema.dense))
        self._vocabs: list[Vocabulary] | None = None if hash_buckets is None else []
        self.lists = MultiValuedEncoder(schema.multi_valued)  # their own ids and options
        # per vocabulary field, the out-of-vocabulary share new rows should show (oov_share.py)
        self.expected_oov: dict[str, float] | None = None
        self._fitted = False

    # ----------------------------------------------------------------- properties
    @property
    def is_fitted(self) -> bool:
        return self._fitted

    @property
    def dense_names(self) -> tuple[str, ...]:
        """Output dense columns: the features, then ``<name>_missing`` indicators if asked."""
        extra = tuple(f"{n}_missing" for n in self.schema.dense) if self.missing_indicator else ()
        return self.schema.dense + extra

    @property
    def sparse_names(self) -> tuple[str, ...]:
        """Output categorical fields, in column order of ``sparse``."""
        return self.schema.categorical

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        """Ids per field, reserved ids included (every id is in ``[0, size)``)."""
        self._require_fit()
        if self.hash_buckets is not None:
            return tuple(self.hash_buckets + 1 for _ in self.schema.categorical)
        assert self._vocabs is not None
        return tuple(len(v) + 2 for v in self._vocabs)

    def vocabulary(self, field: str) -> list[str]:
        """The learned values of ``field`` in id order (id = index + 2)."""
        self._require_fit()
        if self.hash_buckets is not None or self._vocabs is None:
            raise ValueError("a hashing encoder has no vocabulary")
        if field not in self.schema.categorical:
            raise ValueError(f"field must be one of {self.schema.categorical}, got {field!r}")
        return self._vocabs[self.schema.categorical.index(field)].values.to_pylist()

    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("FeatureEncoder is not fitted: call fit(tables) or load it first")

    # ----------------------------------------------------------------------- fit
    def fit(self, tables: Iterable[pa.Table]) -> FeatureEncoder:
        """Learn from a stream of tables (each seen once): ``fit_from_stats([partial_fit(t)])``."""
        return self.fit_from_stats([self.partial_fit(tables)])

    def partial_fit(self, tables: Iterable[pa.Table]) -> FitStats:
        """What fitting needs from ``tables``, as statistics that merge across parts of the data.

        :meth:`fit_from_stats` on the statistics of disjoint parts (files, ranks) learns
        exactly what :meth:`fit` learns on all of them: the same vocabularies in the same id
        order and, bit for bit, the same dense mean and standard deviation
        (:class:`~crossrank.data.fit_stats.FitStats` keeps exact sums). This encoder is not
        changed.
        """
        dense, fields = self._fit_columns()
        if self.lists.specs and not isinstance(tables, pa.Table):
            tables = map(self.lists.for_fit, tables)  # the elements, as lists, are counted
        return FitStats.collect(tables, dense=dense, categorical=fields)

    def _fit_columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The dense columns fitting sums (standardize) and the fields it counts (vocabulary)."""
        dense = self.schema.dense if self.dense_transform == "standardize" else ()
        fields = self.schema.categorical if self.hash_buckets is None else ()
        return dense, fields + self.lists.vocab_fields

    def fit_from_stats(self, parts: Iterable[FitStats]) -> FeatureEncoder:
        """Learn from the merged :meth:`partial_fit` statistics of parts of the data."""
        parts = list(parts)
        if not parts or not all(isinstance(p, FitStats) for p in parts):
            raise TypeError("parts must be a non-empty iterable of FitStats")
        stats = FitStats.merge(parts)
        dense, fields = self._fit_columns()
        if (stats.dense, stats.categorical) != (dense, fields):
            raise ValueError(
                f"the statistics cover dense {stats.dense} and categorical {stats.categorical}, "
                f"this encoder needs dense {dense} and categorical {fields}")
        self.num_rows_fit = stats.num_rows
        if self.dense_transform == "standardize":
            mean, std = stats.mean_std()
            self._mean = mean
            self._std = np.where(std > 0, std, 1.0)
        if self.hash_buckets is None:
            counts = {f: stats.value_counts(f) for f in self.schema.categorical}
            self._vocabs = [select_vocabulary(counts[f], self.min_count, self.max_vocab_size)
                            for f in self.schema.categorical]
            self.expected_oov = expected_shares(counts, rows=stats.num_rows, min_count=self.min_count,
                                                max_vocab_size=self.max_vocab_size)
        self.lists.fit(stats)
        self._fitted = True
        return self

    # ----------------------------------------------------------------- transform
    def transform(self, table: pa.Table, pad_lists: bool = True) -> EncodedBatch:
        """Encode one table; columns are found by name (extra columns are ignored).

        ``pad_lists=False`` leaves the multi-valued fields out of ``sparse`` (B, F): only their
        jagged form in ``multi_valued`` (what the cache stores; padding them is wasted work).
        """
        self._require_fit()
        if not isinstance(table, pa.Table):
            raise TypeError(f"table must be a pyarrow Table, got {type(table).__name__}")
        n = table.num_rows
        d = len(self.schema.dense)
        dense = np.zeros((n, len(self.dense_names)), dtype=np.float32)
        x = np.empty((n, d))  # (B, D) float64: every dense column, then one pass each step
        for i, name in enumerate(self.schema.dense):
            x[:, i] = as_float64(column(table, name), name)
        missing = np.isnan(x)
        if self.dense_transform == "log1p":
            x = np.log1p(np.maximum(x, 0.0))
        elif self.dense_transform == "standardize":
            x = (x - self._mean) / self._std
        x[missing] = 0.0
        dense[:, :d] = x
        if self.missing_indicator:
            dense[:, d:] = missing
        bags = tuple(self.lists.transform(table))  # (values, offsets) per multi-valued field
        widths, f = self.lists.widths if pad_lists and bags else (), len(self.schema.categorical)
        sparse = np.empty((n, f + sum(widths)), dtype=np.int64)  # (B, F + sum of widths)
        self._categorical_ids(table, sparse[:, :f])
        write_padded(sparse, f, bags[:len(widths)], widths)  # one matrix: no copies
        label = row_labels(table, self.schema.labels)
        ids = None
        if self.schema.id_column is not None and self.schema.id_column in table.column_names:
            ids = _ids(column(table, self.schema.id_column))
        return EncodedBatch(dense=dense, sparse=sparse, label=label, ids=ids, multi_valued=bags,
                            weight=row_weights(table, self.schema.weight))

    def _categorical_ids(self, table: pa.Table, sparse: np.ndarray) -> None:
        """Every categorical field's ids into ``sparse`` (B, F) int64
        (:func:`crossrank.data.field_ids.ids_of_fields`)."""
        vocabs = self._vocabs if self.hash_buckets is None and self._vocabs is not None \
            else [None] * len(self.schema.categorical)
        ids_of_fields([column(table, f) for f in self.schema.categorical], vocabs,
                      self.hash_buckets, out=sparse)

    # ----------------------------------------------------------------- persistence
    def _header(self) -> dict[str, Any]:
        self._require_fit()
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "schema": self.schema.to_dict(),
            "options": {
                "dense_transform": self.dense_transform,
                "missing_indicator": self.missing_indicator,
                "min_count": self.min_count,
                "max_vocab_size": self.max_vocab_size,
                "hash_buckets": self.hash_buckets,
            },
            "num_rows_fit": self.num_rows_fit,
            "dense_mean": [float(v) for v in self._mean],
            "dense_std": [float(v) for v in self._std],
            "expected_oov_share": self.expected_oov,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON state (vocabularies inline); :meth:`from_dict` inverts it."""
        d = self._header()
        fields, vocabs = self._vocab_fields()
        if fields:
            d["vocabularies"] = {f: v.values.to_pylist()
                                 for f, v in zip(fields, vocabs, strict=True)}
        return d

    def _vocab_fields(self) -> tuple[tuple[str, ...], list[Vocabulary]]:
        """Every field with a vocabulary (categorical, then multi-valued) and theirs."""
        own = self._vocabs if self.hash_buckets is None and self._vocabs is not None else []
        fields = self.schema.categorical if own else ()
        return fields + self.lists.vocab_fields, list(own) + self.lists.vocabularies()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output; unknown keys raise."""
        return cls._from_parts(d, None)

    @classmethod
    def _from_parts(cls, d: dict[str, Any], vocab: pa.Array | None) -> FeatureEncoder:
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict, got {type(d).__name__}")
        known = {"format", "version", "schema", "options", "num_rows_fit", "dense_mean",
                 "dense_std", "vocabularies", "vocab_file", "vocab_lengths", "expected_oov_share"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown encoder keys {unknown}; known keys are {sorted(known)}")
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} state: format={d.get('format')!r}, "
                f"version={d.get('version')!r}"
            )
        enc = cls(TableSchema.from_dict(d["schema"]), **d["options"])
        enc.num_rows_fit = int(d["num_rows_fit"])
        enc._mean = np.asarray(d["dense_mean"], dtype=np.float64)
        enc._std = np.asarray(d["dense_std"], dtype=np.float64)
        enc.expected_oov = d.get("expected_oov_share")  # absent from encoders saved before it
        if len(enc._mean) != len(enc.schema.dense) or len(enc._std) != len(enc.schema.dense):
            raise ValueError("dense_mean/dense_std do not match the schema's dense columns")
        own = enc.schema.categorical if enc.hash_buckets is None else ()
        fields = own + enc.lists.vocab_fields
        found = saved_vocabularies(d, vocab, fields)
        if enc.hash_buckets is None:
            enc._vocabs = found[:len(own)]
        enc.lists.set_vocabularies(found[len(own):])
        enc._fitted = True
        return enc

    def save(self, directory: str | Path) -> None:
        """Write ``encoder.json`` and (vocabulary mode) ``vocab.arrow`` into ``directory``,
        each to a temporary name and renamed (the JSON last)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        d = self._header()
        fields, vocabs = self._vocab_fields()
        if fields:
            d["vocab_file"] = "vocab.arrow"
            d["vocab_lengths"] = {f: len(v) for f, v in zip(fields, vocabs, strict=True)}
            write_vocabularies(directory / "vocab.arrow", vocabs)
        atomic_write_text(directory / "encoder.json", json.dumps(d, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> FeatureEncoder:
        """Read what :meth:`save` wrote; a missing, damaged or foreign file is one
        :class:`~crossrank.errors.ModelFileError` line naming it (and the key)."""
        path = Path(directory) / "encoder.json"
        d = read_json_object(path)
        vocab = None
        if d.get("vocab_file") is not None:  # a plain name beside encoder.json, nothing else
            vocab = read_vocabularies(path.parent / plain_name(d["vocab_file"], source=path,
                                                               key="vocab_file"))
        try:
            return cls._from_parts(d, vocab)
        except (KeyError, TypeError, ValueError) as err:
            raise file_error(path, err) from None


def _ids(arr: pa.Array) -> np.ndarray:
    if arr.null_count:
        raise ValueError("the id column has missing values")
    if pa.types.is_integer(arr.type):
        return arr.to_numpy().astype(np.int64)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.str_)

