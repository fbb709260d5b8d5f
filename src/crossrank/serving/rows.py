"""Raw rows to the typed columns the encoder reads, with every problem named by row and column.

Rows come as records (JSON objects, Python dicts), a CSV body or an Arrow table. Each becomes
one Arrow array per feature column, typed and checked by the file readers' own validation
(:func:`~crossrank.data.validate.validate_columns`), so a value means here exactly what it
means to ``crossrank predict``: null (or an empty string) is missing, numbers may be given as
numbers or as numeric text, NaN and infinities are errors, and a categorical value is text or
an integer, kept as its decimal text. An unseen categorical value is not an error (the encoder
maps it to the out-of-vocabulary id). Extra keys or columns are ignored.

The work is per column (one ``pyarrow.array`` and a few vectorised casts each), never per row,
except where a column fails to convert and its first bad value is looked for.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from crossrank.data.schema import TableSchema
from crossrank.data.validate import show_value, validate_columns
from crossrank.errors import CrossrankError

__all__ = ["KINDS", "BadRowsError", "RowProblems", "feature_schema", "from_arrow", "from_csv",
           "from_records", "typed_columns"]

# what can be wrong with a request's rows (the server's error kinds)
KINDS = ("malformed_json", "not_an_object", "missing_column", "non_numeric", "non_finite",
         "bad_value", "invalid_utf8", "too_many_rows", "body_too_large", "malformed_csv")


class BadRowsError(CrossrankError, ValueError):
    """Rows that cannot be scored: ``kind`` (one of :data:`KINDS`), the 0-based ``row`` and
    the ``column`` where known, and ``detail``.

    Example:
        >>> str(BadRowsError("non_numeric", "non-numeric dense value 'x'", row=3, column="I1"))
        "row 3, column 'I1': non-numeric dense value 'x'"
    """

    def __init__(self, kind: str, detail: str, *, row: int | None = None,
                 column: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.detail, self.row, self.column = kind, detail, row, column
        where = ", ".join(p for p in (f"row {row}" if row is not None else "",
                                      f"column {column!r}" if column is not None else "") if p)
        super().__init__(f"{where}: {detail}" if where else detail)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "row": self.row, "column": self.column,
                "message": str(self)}


def feature_schema(schema: TableSchema) -> TableSchema:
    """The schema's feature columns only: no label, no id (scoring reads neither)."""
    return TableSchema(label=None, dense=schema.dense, categorical=schema.categorical,
                       task=schema.task)


def _first_bad(values: Sequence[Any], ok: Any) -> int:
    return next(i for i, v in enumerate(values) if not ok(v))


def _is_number(v: Any) -> bool:
    if v is None:
        return True
    if type(v) not in (int, float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer beyond float's range
        return False


def _is_category(v: Any) -> bool:
    return v is None or type(v) in (str, int)


def _record_column(values: list[Any], name: str, kind: str) -> pa.Array:
    """One column of JSON values as an Arrow array the validation can read: dense values are
    JSON numbers or null; categorical values text, integers or null."""
    try:
        arr: pa.Array | None = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = None
    if kind == "dense":
        if arr is not None and (pa.types.is_integer(arr.type) or pa.types.is_null(arr.type)):
            return arr.cast(pa.float64())
        if arr is not None and pa.types.is_floating(arr.type):
            finite = np.isfinite(arr.to_numpy(zero_copy_only=False))
            if finite[~np.asarray(arr.is_null())].all():
                return arr.cast(pa.float64())
        row = next((i for i, v in enumerate(values) if not _is_number(v)), None)
        if row is None:  # numbers pyarrow would not mix (huge integers)
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        value = values[row]
        if isinstance(value, float) or type(value) is int:
            raise BadRowsError("non_finite", f"non-finite dense value {show_value(value)}",
                               row=row, column=name)
        raise BadRowsError("non_numeric", f"non-numeric dense value {show_value(value)} (a "
                           "JSON number or null)", row=row, column=name)
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_integer(arr.type)
                            or pa.types.is_null(arr.type)):
        return arr.cast(pa.string())  # integers as their decimal text, as the readers do
    if all(_is_category(v) for v in values):  # text and integers mixed
        return pa.array([v if v is None or type(v) is str else str(v) for v in values],
                        pa.string())
    row = _first_bad(values, _is_category)
    raise BadRowsError("bad_value", f"categorical value {show_value(values[row])} must be text, "
                       "an integer or null", row=row, column=name)


def from_records(records: Any, schema: TableSchema) -> dict[str, pa.Array]:
    """The feature columns of a list of records (dicts), raising :class:`BadRowsError` for a
    record that is not an object or lacks a column, and for a value of the wrong JSON type.
    Dense columns come out float64 and categorical ones string, so the columns of several
    lists concatenate."""
    if not isinstance(records, list):
        raise BadRowsError("not_an_object", f"rows must be a list of objects, got "
                           f"{type(records).__name__}")
    for i, row in enumerate(records):
        if type(row) is not dict:
            raise BadRowsError("not_an_object", f"row must be an object, got "
                               f"{show_value(row)}", row=i)
    columns: dict[str, pa.Array] = {}
    for kind, names in (("dense", schema.dense), ("categorical", schema.categorical)):
        for name in names:
            try:
                values = [row[name] for row in records]
            except KeyError:
                row = _first_bad(records, lambda r, n=name: n in r)
                raise BadRowsError("missing_column", f"no value for column {name!r} (give "
                                   "null for a missing value)", row=row, column=name) from None
            columns[name] = _record_column(values, name, kind)
    return columns


def from_arrow(table: pa.Table, schema: TableSchema) -> dict[str, pa.Array]:
    """The feature columns of an Arrow table (one array each)."""
    columns = {}
    for name in schema.dense + schema.categorical:
        if name not in table.column_names:
            raise BadRowsError("missing_column", f"no column {name!r} (the table has "
                               f"{table.column_names})", column=name)
        col = table.column(name)
        columns[name] = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return columns


def from_csv(data: bytes, schema: TableSchema) -> dict[str, pa.Array]:
    """The feature columns of a CSV text with a header row (every field read as text)."""
    import pyarrow.csv as pa_csv

    names = list(schema.dense + schema.categorical)
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data), read_options=pa_csv.ReadOptions(use_threads=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.binary() for n in names}, strings_can_be_null=True,
                include_columns=names, include_missing_columns=False))
    except (pa.ArrowInvalid, pa.ArrowKeyError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        missing = next((n for n in names if f"'{n}'" in text or f'"{n}"' in text), None)
        if missing is not None:
            raise BadRowsError("missing_column", f"no column {missing!r} in the CSV header",
                               column=missing) from None
        raise BadRowsError("malformed_csv", f"cannot read the CSV body: {text}") from None
    return from_arrow(table, schema)


@dataclass(frozen=True)
class RowProblems:
    """Bad rows of a batch: sorted 0-based ``rows``, each with its first problem."""

    rows: np.ndarray
    errors: tuple[BadRowsError, ...]


def typed_columns(columns: dict[str, pa.Array], schema: TableSchema,
                  num_rows: int) -> tuple[pa.Table, RowProblems | None]:
    """The columns typed as the encoder reads them, and the rows that cannot be scored."""
    features = feature_schema(schema)
    try:
        table, issues = validate_columns(columns, features, num_rows=num_rows)
    except TypeError as err:  # a column of a type no value of which can be read
        column = next((n for n in columns if f"'{n}'" in str(err)), None)
        raise BadRowsError("bad_value", str(err), column=column) from None
    if issues is None:
        return table, None
    errors = tuple(BadRowsError(reason if reason in KINDS else "bad_value", detail,
                                row=int(row), column=column)
                   for row, column, reason, detail in zip(issues.rows, issues.columns,
                                                          issues.reasons, issues.details,
                                                          strict=True))
    return table, RowProblems(issues.rows, errors)
