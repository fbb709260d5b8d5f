"""Row validation: turn raw columns into typed ones and find every bad row, vectorised.

Readers hand :func:`validate_columns` the columns of one parsed batch (text formats read every
field as ``binary``; Parquet hands typed columns). It returns the typed columns in schema order
and a :class:`RowIssues` listing each bad row once, with the first bad column in file order.

Typed output: id ``string`` (text) or its Parquet type, label ``float64``, dense ``float64`` with
nulls for missing values, categorical ``string`` with nulls for missing values.

Missing means null or the empty string, in every format: an empty CSV/TSV field is read as null,
and an empty Parquet string is made null here, so one table encodes to the same ids whichever
format it was written in (an empty categorical value is the missing id, never a category of its
own; an empty label is a missing label, an empty id a missing id).

The fast path is one ``pyarrow.compute.cast`` per column. Only a column whose cast fails is
searched for its bad values, by bisection over the column's distinct values, so a clean chunk
costs no more than the casts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.column_roles import column_roles, column_type_problem, is_text
from crossrank.data.multi_valued import MAX_LIST_LENGTH, list_lengths
from crossrank.data.schema import TableSchema

# at most this many values are checked one by one (see empty_as_missing)
_FEW_VALUES = 8


@dataclass(frozen=True)
class RowIssues:
    """Bad rows of one batch: ``rows`` (sorted batch indices) and, per row, the first problem."""

    rows: np.ndarray
    columns: tuple[str | None, ...]
    reasons: tuple[str, ...]
    details: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)


class _Collector:
    """Keeps, for every row, the first failing check (checks arrive in file column order)."""

    def __init__(self, n: int) -> None:
        self.first = np.full(n, -1, dtype=np.int32)
        self.checks: list[tuple[str | None, str, str, pa.Array | None]] = []

    def add(
        self, mask: np.ndarray, column: str | None, reason: str, template: str, source: pa.Array
    ) -> None:
        """``template`` may hold ``{v}``: the repr of the row's raw value in ``source``."""
        if not mask.any():
            return
        self.first[mask & (self.first < 0)] = len(self.checks)
        self.checks.append((column, reason, template, source))

    def issues(self) -> RowIssues | None:
        rows = np.flatnonzero(self.first >= 0)
        if len(rows) == 0:
            return None
        columns, reasons, details = [], [], []
        for i in rows:
            column, reason, template, source = self.checks[self.first[i]]
            columns.append(column)
            reasons.append(reason)
            value = source[int(i)].as_py() if source else None
            details.append(template.format(v=show_value(value)) if source else template)
        return RowIssues(rows, tuple(columns), tuple(reasons), tuple(details))


SHOWN_CHARS = 100  # messages show at most this many characters of a value


def show_value(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value for a one-line message: its repr, cut to ``limit`` characters with the length.

    Example:
        >>> show_value(b"abc"), show_value(b"\\xff1")
        ("'abc'", "b'\\\\xff1'")
        >>> show_value("x" * 500, limit=10)
        "'xxxxxxxx... (500 characters)"
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            text, size = repr(value), f"{len(value)} bytes"
        else:
            text, size = repr(value), f"{len(value)} characters"
    else:
        value = value if isinstance(value, str) else str(value)
        text, size = repr(value), f"{len(value)} characters"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}... ({size})"


def show_names(names: Sequence[str], *, most: int = 40) -> str:
    """``names`` as a list for a one-line message: the first ``most``, each cut to 60
    characters, then how many more.

    Example:
        >>> show_names(["a", "b"]), show_names([f"c{i}" for i in range(45)])[-22:]
        ("['a', 'b']", "'c39', ... and 5 more]")
    """
    shown = ", ".join(show_value(n, limit=60) for n in names[:most])
    more = len(names) - most
    return f"[{shown}, ... and {more} more]" if more > 0 else f"[{shown}]"


def _failures(values: pa.Array, op: Callable[[pa.Array], object]) -> np.ndarray:
    """Indices of ``values`` on which ``op`` raises, by bisection (O(bad * log n) calls)."""
    out: list[int] = []
    stack = [(0, len(values))]
    while stack:
        lo, hi = stack.pop()
        with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
            op(values.slice(lo, hi - lo))
            continue  # the whole slice is fine
        if hi - lo == 1:
            out.append(lo)
        else:
            mid = (lo + hi) // 2
            stack += [(mid, hi), (lo, mid)]
    return np.asarray(sorted(out), dtype=np.int64)


def _cast_or_locate(arr: pa.Array, to: pa.DataType) -> tuple[pa.Array, np.ndarray | None]:
    """Cast ``arr``; on failure null the values that cannot be cast and return their mask."""
    with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pc.cast(arr, to), None  # fast path: every value casts
    encoded = pc.dictionary_encode(arr)
    bad_values = np.zeros(len(encoded.dictionary), dtype=bool)
    bad_values[_failures(encoded.dictionary, lambda a: pc.cast(a, to))] = True
    codes = encoded.indices.fill_null(-1).to_numpy()
    bad = (codes >= 0) & bad_values[np.maximum(codes, 0)]
    return pc.cast(pc.if_else(pa.array(bad), pa.scalar(None, arr.type), arr), to), bad


def _null_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return pc.is_null(arr).to_numpy(zero_copy_only=False)


def empty_as_missing(arr: pa.Array) -> pa.Array:
    """Text columns with every empty string made null (the one meaning of missing).

    Example:
        >>> empty_as_missing(pa.array(["a", "", None])).to_pylist()
        ['a', None, None]
    """
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not is_text(arr.type) or len(arr) == 0:
        return arr
    if len(arr) <= _FEW_VALUES:  # a row being scored: a Python look costs less than 3 kernels
        values = arr.to_pylist()
        if "" not in values and b"" not in values:
            return arr
    empty = pc.equal(pc.binary_length(arr), 0)
    if not pc.any(empty).as_py():
        return arr
    return pc.if_else(empty, pa.scalar(None, arr.type), arr)


def _to_text(arr: pa.Array, name: str, out: _Collector) -> pa.Array:
    """binary -> string with UTF-8 validation; other string-like types pass through."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    elif pa.types.is_large_binary(arr.type):
        arr = pc.cast(arr, pa.binary())
    if pa.types.is_binary(arr.type):
        text, bad = _cast_or_locate(arr, pa.string())
        if bad is not None:
            out.add(bad, name, "invalid_utf8", "invalid UTF-8 in value {v}", arr)
        return text
    return arr


def _numeric(arr: pa.Array, name: str, role: str, out: _Collector) -> tuple[pa.Array, np.ndarray]:
    """Any numeric or text column -> float64, recording non-numeric values; returns the mask of
    rows still usable (not yet flagged) for the range checks that follow."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    is_text = pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)
    is_text = is_text or pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if is_text:
        # fast path: bytes that parse as numbers are ASCII, so valid UTF-8 too
        with suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pc.cast(arr, pa.float64()), np.zeros(len(arr), dtype=bool)
        raw = arr
        arr = _to_text(arr, name, out)
        values, bad = _cast_or_locate(arr, pa.float64())
        if bad is not None:
            if role == "label":
                out.add(bad, name, "bad_label", "non-numeric label {v}", raw)
            else:
                out.add(bad, name, "non_numeric", f"non-numeric {role} value {{v}}", raw)
        return values, bad if bad is not None else np.zeros(len(arr), dtype=bool)
    return pc.cast(arr, pa.float64()), np.zeros(len(arr), dtype=bool)


def _multi_valued(raw: pa.Array, name: str, separator: str, out: _Collector) -> pa.Array:
    """A multi-valued column as text or a list, with rows over the length limit flagged."""
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if not (pa.types.is_list(raw.type) or pa.types.is_large_list(raw.type)
            or pa.types.is_integer(raw.type)):
        raw = _to_text(raw, name, out)
        if not pa.types.is_string(raw.type):
            raw = pc.cast(raw, pa.string())
    if pa.types.is_string(raw.type) and len(raw) and \
            (pc.max(pc.binary_length(raw)).as_py() or 0) < MAX_LIST_LENGTH:
        return raw  # a text of L bytes splits into at most L + 1 elements: none is too long
    too_long = list_lengths(raw, separator) > MAX_LIST_LENGTH
    out.add(too_long, name, "list_too_long",
            f"more than {MAX_LIST_LENGTH:,} elements in a multi-valued value", None)
    return raw


def validate_columns(
    columns: dict[str, pa.Array],
    schema: TableSchema,
    *,
    num_rows: int,
    row_fields: Sequence[pa.Array] | None = None,
    check_line_breaks: bool = False,
    empties_are_null: bool = False,
) -> tuple[pa.Table, RowIssues | None]:
    """Type and check one batch.

    Args:
        columns: every schema column of the batch, by name (extra entries are ignored).
        schema: what the columns mean.
        num_rows: rows in the batch.
        row_fields: every field of the row as read (text formats) for the blank-row check; a
            row whose fields are all null is a blank line and is bad.
        check_line_breaks: flag text values holding CR or LF (CSV quoting gone wrong).
        empties_are_null: the reader already made every empty text value null (the CSV
            parser does), so the pass that would (:func:`empty_as_missing`) is skipped.

    Returns:
        The typed table (all rows, bad ones included) in schema order and the issues, or
        ``None`` when every row is good.

    Raises:
        TypeError: a column whose Arrow type cannot be read in its role (a list or a struct
            anywhere, floats as categorical ids), naming it; see :func:`column_type_problem`.

    Example:
        >>> s = TableSchema(label="y", dense=("x",), categorical=("c",))
        >>> cols = {"y": pa.array([b"1", b"0", b"0"]), "x": pa.array([b"2", b"3", b"z"]),
        ...         "c": pa.array([b"a", b"b", None])}
        >>> table, issues = validate_columns(cols, s, num_rows=3)
        >>> issues.rows.tolist(), issues.details
        ([2], ("non-numeric dense value 'z'",))
        >>> table.column("x").to_pylist()
        [2.0, 3.0, None]
    """
    out = _Collector(num_rows)
    if row_fields is not None and len(row_fields) > 1:
        blank = np.ones(num_rows, dtype=bool)
        for field in row_fields:
            blank &= _null_mask(field)
        out.add(blank, None, "blank_row", "blank line (every field empty)", None)
    if check_line_breaks:
        for field in row_fields or ():
            if pa.types.is_binary(field.type) or pa.types.is_string(field.type):
                has_break = pc.match_substring_regex(field, "[\r\n]").fill_null(False)
                if pc.any(has_break).as_py():
                    out.add(
                        has_break.to_numpy(zero_copy_only=False), None, "line_break_in_field",
                        "field holds a line break (unterminated or multi-line quoted value) {v}",
                        field,
                    )
    roles = column_roles(schema)
    for name, role in roles.items():
        problem = column_type_problem(role, columns[name].type)
        if problem is not None:
            raise TypeError(f"{role} column {name!r} {problem}")
    if not empties_are_null:
        columns = {n: empty_as_missing(columns[n]) for n in roles}
    typed: dict[str, pa.Array] = {}
    if schema.id_column is not None:
        ids = columns[schema.id_column]
        if not (pa.types.is_integer(ids.type) or pa.types.is_string(ids.type)):
            ids = _to_text(ids, schema.id_column, out)
            ids = pc.cast(ids, pa.string()) if pa.types.is_large_string(ids.type) else ids
        out.add(_null_mask(ids), schema.id_column, "missing_id", "missing id", None)
        typed[schema.id_column] = ids
    for i, (label, task) in enumerate(zip(schema.labels, schema.tasks)):
        raw = columns[label]
        if i == 0:  # a multi-task schema's later labels may be missing: that task is masked
            out.add(_null_mask(raw), label, "missing_label", "missing label", None)
        values, flagged = _numeric(raw, label, "label", out)
        v = values.fill_null(0.0).to_numpy()
        if task == "binary":
            wrong = ~((v == 0.0) | (v == 1.0))
            message = "label must be 0 or 1 for task 'binary', got {v}"
        else:
            wrong = ~np.isfinite(v)
            message = "label must be a finite number for task 'regression', got {v}"
        out.add(wrong & ~flagged, label, "bad_label", message, raw)
        typed[label] = values
    if schema.weight is not None:
        raw = columns[schema.weight]
        out.add(_null_mask(raw), schema.weight, "missing_weight", "missing weight", None)
        values, flagged = _numeric(raw, schema.weight, "weight", out)
        v = values.fill_null(0.0).to_numpy()
        out.add(~(np.isfinite(v) & (v >= 0)) & ~flagged, schema.weight, "bad_weight",
                "weight must be a finite number >= 0, got {v}", raw)
        typed[schema.weight] = values
    if schema.group is not None:
        group = columns[schema.group]
        out.add(_null_mask(group), schema.group, "missing_group", "missing group", None)
        if schema.group not in schema.feature_names and schema.group != schema.id_column:
            if not (pa.types.is_integer(group.type) or pa.types.is_floating(group.type)):
                group = _to_text(group, schema.group, out)
                group = pc.cast(group, pa.string()) if not pa.types.is_string(group.type) \
                    else group
            typed[schema.group] = group
    for name in schema.dense:
        raw = columns[name]
        values, flagged = _numeric(raw, name, "dense", out)
        if values.null_count < len(values):
            finite = pc.is_finite(values).fill_null(True).to_numpy(zero_copy_only=False)
            out.add(~finite & ~flagged, name, "non_finite", "non-finite dense value {v}", raw)
        typed[name] = values
    for name in schema.categorical:
        raw = columns[name]
        if pa.types.is_dictionary(raw.type):
            raw = raw.dictionary_decode()
        if pa.types.is_integer(raw.type):
            text = pc.cast(raw, pa.string())  # integer ids stay exact as their decimal text
        else:
            text = _to_text(raw, name, out)
            if not pa.types.is_string(text.type):
                text = pc.cast(text, pa.string())
        typed[name] = text
    for spec in schema.multi_valued:
        typed[spec.name] = _multi_valued(columns[spec.name], spec.name, spec.separator, out)
    table = pa.table([typed[n] for n in schema.column_names], names=list(schema.column_names))
    return table, out.issues()
