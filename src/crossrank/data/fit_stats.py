"""What fitting a :class:`~crossrank.data.encoders.FeatureEncoder` learns from data, in a form
that adds up: the statistics of disjoint parts merge into the statistics of the whole.

:class:`FitStats` holds, for a stream of tables:

* the row count;
* per dense column (only those asked for; the encoder asks for them with ``standardize``):
  the count n of non-missing values and their sums S1 = sum x and S2 = sum x^2, **exactly**,
  as integers. Every finite float64 is ``M * 2^E`` with an integer ``|M| < 2^53`` and
  ``E >= -1126``, so S1 is an integer number of units of 2^-1126 and S2 (of the exact squares)
  of units of 2^-2252. Python integers add without rounding, so the sums, and the mean and
  population standard deviation computed from them once at the end (correctly rounded:
  ``mean = S1 / n``, ``var = (n S2 - S1^2) / n^2``), do not depend on how the data was cut
  into chunks, files or ranks, nor on the order the parts are merged in;
* per categorical field (only those asked for): each non-null value's count, an Arrow table
  ``(value: string, count: int64)``.

Chunks are summed with vectorised numpy: ``|M|`` is split into three 18-bit pieces whose sums
and pairwise products, bucketed by exponent with ``numpy.bincount``, stay below 2^53 (exact in
float64) for up to 2^16 values, the slice size used.

Persistence, no pickle: :meth:`FitStats.save` writes ``stats.json`` (counts, the sums as
hexadecimal text) and ``counts.arrow`` (every field's value counts back to back, their lengths
in the JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.columns import as_float64, as_text, column

_FORMAT = "crossrank.FitStats"
_VERSION = 1
_UNIT = 1126  # S1 is in units of 2^-_UNIT, S2 in units of 2^-(2 _UNIT)
_SLICE = 1 << 16  # values per bincount: sums of 18-bit products stay exact in float64
_PIECE = 18
_MERGE_ROWS = 1 << 20  # merge pending per-chunk value counts once this many are pending


def exact_sums(x: np.ndarray) -> tuple[int, int]:
    """``(S1, S2)``: sum x in units of 2^-1126 and sum x^2 in units of 2^-2252, exactly.

    Shape:
        x: (n,) finite float64.

    Example:
        >>> s1, s2 = exact_sums(np.array([0.1, 0.2, -3.0]))
        >>> Fraction(s1, 2**1126) == Fraction(0.1) + Fraction(0.2) - 3
        True
        >>> Fraction(s2, 2**2252) == Fraction(0.1) ** 2 + Fraction(0.2) ** 2 + 9
        True
    """
    s1 = s2 = 0
    mask = (1 << _PIECE) - 1
    for lo in range(0, len(x), _SLICE):
        m, e = np.frexp(x[lo:lo + _SLICE])  # x = m 2^e, 0.5 <= |m| < 1
        big = (m * 2.0**53).astype(np.int64)  # |M| < 2^53, exact
        exp = e.astype(np.int64) - 53 + _UNIT  # x = M 2^(exp - _UNIT), exp >= 0
        sign = np.sign(big)
        mag = np.abs(big)
        a, b, c = mag >> 2 * _PIECE, (mag >> _PIECE) & mask, mag & mask  # |M| = a 2^36 + b 2^18 + c
        # per exponent bucket, sums of values below 2^37: exact in float64
        linear = [np.bincount(exp, weights=(sign * p).astype(np.float64)) for p in (a, b, c)]
        square = [np.bincount(exp, weights=p.astype(np.float64))
                  for p in (a * a, 2 * a * b, 2 * a * c + b * b, 2 * b * c, c * c)]
        for k in np.flatnonzero(np.bincount(exp)).tolist():
            pieces = [int(part[k]) for part in linear]
            s1 += ((pieces[0] << 2 * _PIECE) + (pieces[1] << _PIECE) + pieces[2]) << k
            squares = [int(part[k]) for part in square]  # M^2 = sum_j squares[j] 2^(18 (4 - j))
            s2 += sum(v << _PIECE * (4 - j) for j, v in enumerate(squares)) << 2 * k
    return s1, s2


class FitStats:
    """Row count, exact dense sums and categorical value counts of a stream of tables.

    Args:
        dense: the dense columns to sum (for ``standardize``), in order.
        categorical: the categorical fields to count values of, in order.

    Build with :meth:`collect` (or :meth:`add` chunk by chunk), combine parts with
    :meth:`merge`, read with :meth:`mean_std` and :meth:`value_counts`.

    Shape:
        mean_std: (D,) float64 each, D = len(dense).

    Example:
        >>> t = pa.table({"n": [1.0, None, 3.0], "c": ["a", "b", "a"]})
        >>> a = FitStats.collect([t.slice(0, 1)], dense=("n",), categorical=("c",))
        >>> b = FitStats.collect([t.slice(1)], dense=("n",), categorical=("c",))
        >>> whole = FitStats.merge([a, b])
        >>> whole.num_rows, whole.mean_std()
        (3, (array([2.]), array([1.])))
        >>> sorted(whole.value_counts("c").to_pylist(), key=lambda r: r["value"])
        [{'value': 'a', 'count': 2}, {'value': 'b', 'count': 1}]
    """

    def __init__(self, *, dense: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        for arg, names in (("dense", dense), ("categorical", categorical)):
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"{arg} must be a sequence of column names, got {names!r}")
        self.dense: tuple[str, ...] = tuple(dense)
        self.categorical: tuple[str, ...] = tuple(categorical)
        self.num_rows = 0
        # per dense column: [n, S1, S2] (see the module docstring for the units)
        self._sums: list[list[int]] = [[0, 0, 0] for _ in self.dense]
        self._pending: list[list[pa.Table]] = [[] for _ in self.categorical]
        self._pending_rows = 0

    # -------------------------------------------------------------------- building
    @classmethod
    def collect(cls, tables: Iterable[pa.Table], *, dense: Sequence[str] = (),
                categorical: Sequence[str] = ()) -> FitStats:
        """The statistics of every table of ``tables`` (each read once)."""
        if isinstance(tables, pa.Table):
            raise TypeError("tables must be an iterable of tables; wrap one table as [table]")
        stats = cls(dense=dense, categorical=categorical)
        for table in tables:
            stats.add(table)
        return stats

    def add(self, table: pa.Table) -> None:
        """Count one more table's rows, values and sums."""
        if not isinstance(table, pa.Table):
            raise TypeError(f"tables must yield pyarrow Tables, got {type(table).__name__}")
        self.num_rows += table.num_rows
        for sums, name in zip(self._sums, self.dense, strict=True):
            x = as_float64(column(table, name), name)
            x = x[~np.isnan(x)]
            s1, s2 = exact_sums(x)
            sums[0] += len(x)
            sums[1] += s1
            sums[2] += s2
        for pending, name in zip(self._pending, self.categorical, strict=True):
            values = column(table, name)
            if pa.types.is_list(values.type):  # a multi-valued field: count its elements
                values = pc.list_flatten(values)
            counts = pc.value_counts(values.drop_null())
            pending.append(pa.table({"value": as_text(counts.field("values")),
                                     "count": counts.field("counts")}))
            self._pending_rows += len(counts)
        if self._pending_rows > _MERGE_ROWS:
            self._compact()

    def _compact(self) -> None:
        self._pending = [[_merge_counts(p)] for p in self._pending]
        self._pending_rows = sum(p[0].num_rows for p in self._pending)

    @classmethod
    def merge(cls, parts: Sequence[FitStats]) -> FitStats:
        """The statistics of the parts' data together (parts must cover the same columns)."""
        parts = list(parts)
        if not parts or not all(isinstance(p, FitStats) for p in parts):
            raise TypeError("parts must be a non-empty sequence of FitStats")
        first = parts[0]
        for p in parts[1:]:
            if (p.dense, p.categorical) != (first.dense, first.categorical):
                raise ValueError(
                    f"cannot merge FitStats of other columns: dense {p.dense} vs {first.dense}, "
                    f"categorical {p.categorical} vs {first.categorical}")
        out = cls(dense=first.dense, categorical=first.categorical)
        out.num_rows = sum(p.num_rows for p in parts)
        for i in range(len(out.dense)):
            out._sums[i] = [sum(p._sums[i][k] for p in parts) for k in range(3)]
        for j in range(len(out.categorical)):
            out._pending[j] = [_merge_counts([t for p in parts for t in p._pending[j]])]
        return out

    # -------------------------------------------------------------------- reading
    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population standard deviation of each dense column's non-missing values
        (0 and 0 for a column without any), each correctly rounded from the exact sums."""
        mean, std = np.zeros(len(self.dense)), np.zeros(len(self.dense))
        for i, (n, s1, s2) in enumerate(self._sums):
            if n == 0:
                continue
            try:
                mean[i] = float(Fraction(s1, n << _UNIT))
                std[i] = np.sqrt(float(Fraction(n * s2 - s1 * s1, (n * n) << 2 * _UNIT)))
            except OverflowError:
                raise ValueError(f"dense column {self.dense[i]!r}: the variance of its values "
                                 "overflows float64 (values beyond about 1e154)") from None
        return mean, std

    def value_counts(self, field: str) -> pa.Table:
        """``(value, count)`` of every non-null value of ``field`` (in no particular order)."""
        if field not in self.categorical:
            raise ValueError(f"field must be one of {self.categorical}, got {field!r}")
        j = self.categorical.index(field)
        self._pending[j] = [_merge_counts(self._pending[j])]
        return self._pending[j][0]

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> None:
        """Write ``stats.json`` and ``counts.arrow`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        counts = [self.value_counts(f) for f in self.categorical]
        column = pa.concat_tables(counts) if counts else _merge_counts([])
        with pa.OSFile(str(directory / "counts.arrow"), "wb") as sink:
            with pa.ipc.new_file(sink, column.schema) as writer:
                writer.write_table(column)
        state: dict[str, Any] = {
            "format": _FORMAT, "version": _VERSION, "num_rows": self.num_rows,
            "dense": {name: {"count": n, "sum": f"{s1:x}", "sum_squares": f"{s2:x}"}
                      for name, (n, s1, s2) in zip(self.dense, self._sums, strict=True)},
            "dense_order": list(self.dense),
            "categorical_lengths": {f: c.num_rows
                                    for f, c in zip(self.categorical, counts, strict=True)},
            "categorical_order": list(self.categorical),
        }
        (directory / "stats.json").write_text(json.dumps(state, indent=1) + "\n", "utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> FitStats:
        """Read what :meth:`save` wrote (the counts memory-mapped)."""
        directory = Path(directory)
        path = directory / "stats.json"
        state = json.loads(path.read_text("utf-8"))
        if state.get("format") != _FORMAT or state.get("version") != _VERSION:
            raise ValueError(f"{str(path)!r} is not a {_FORMAT} v{_VERSION} file")
        stats = cls(dense=state["dense_order"], categorical=state["categorical_order"])
        stats.num_rows = int(state["num_rows"])
        for i, name in enumerate(stats.dense):
            d = state["dense"][name]
            stats._sums[i] = [int(d["count"]), int(d["sum"], 16), int(d["sum_squares"], 16)]
        with pa.memory_map(str(directory / "counts.arrow"), "r") as source:
            counts = pa.ipc.open_file(source).read_all()
        lengths = state["categorical_lengths"]
        if sum(lengths.values()) != counts.num_rows:
            raise ValueError(f"{str(path)!r}: categorical_lengths do not match counts.arrow")
        start = 0
        for j, field in enumerate(stats.categorical):
            stats._pending[j] = [counts.slice(start, lengths[field])]
            start += lengths[field]
        return stats


def _merge_counts(parts: list[pa.Table]) -> pa.Table:
    """One ``(value, count)`` table from several, counts of equal values summed."""
    if not parts:
        return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    if len(parts) == 1:
        return parts[0]
    merged = pa.concat_tables(parts).group_by("value").aggregate([("count", "sum")])
    return pa.table({"value": merged["value"], "count": merged["count_sum"]})
