"""Schema inference: which columns of a file are the label, the id, dense features and
categorical fields, read off a sample of the file.

CSV and Parquet: the label and the id column are taken as named; the other columns are dense
or categorical by the rule of :mod:`crossrank.data.column_kind` (text, true/false and
all-missing columns categorical; floating-point columns dense; an integer column categorical
when named like an id, written with leading zeros, or filling most of its range like ids
numbered 1..N do; dense otherwise), applied to the first ``sample_rows`` rows of the first
shard. The caller's ``dense=``/``categorical=`` override the rule column by column.

Criteo TSV keeps its fixed layout (``label, I1..I13, C1..C26``; 39 fields is the unlabelled
test file); its sample only fills in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.column_check import describe_missing, show_columns
from crossrank.data.column_kind import KindDecision, decide_kind
from crossrank.data.files import FORMATS, Format, list_shards
from crossrank.data.infer_report import ColumnKind, ColumnReport, InferredSchema
from crossrank.data.sample import file_columns, repeated, sample_table
from crossrank.data.schema import TASKS, TableSchema, Task, _names, criteo_schema
from crossrank.errors import BadInputError

DEFAULT_SAMPLE_ROWS = 100_000


def _check_arguments(fmt: object, label: object, id_column: object, infer_rest: object,
                     task: object, sample_rows: object) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    for argument, value in (("label", label), ("id_column", id_column)):
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError(f"{argument} must be a non-empty string or None, got {value!r}")
    if not isinstance(infer_rest, bool):
        raise TypeError(f"infer_rest must be a bool, got {infer_rest!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise ValueError(f"sample_rows must be a positive int, got {sample_rows!r}")


def _assigned(label: str | None, id_column: str | None, dense: tuple[str, ...],
              categorical: tuple[str, ...], exclude: tuple[str, ...]) -> dict[str, str]:
    """Column -> the argument naming it; a column named by two arguments raises."""
    out: dict[str, str] = {}
    pairs = [("label", label), ("id_column", id_column)]
    pairs += [("dense", n) for n in dense] + [("categorical", n) for n in categorical]
    pairs += [("exclude", n) for n in exclude]
    for argument, name in pairs:
        if name is None:
            continue
        if name in out:
            raise ValueError(f"column {name!r} is named twice (in {out[name]} and in {argument})")
        out[name] = argument
    return out


def _stats(values: pa.Array) -> tuple[int, float]:
    """Distinct present values and the missing share of one sampled column."""
    rows = len(values)
    if not rows or values.null_count == rows:
        return 0, 1.0 if rows else 0.0
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)  # a list column: its distinct elements
    distinct = pc.count_distinct(values, mode="only_valid").as_py()
    return int(distinct), values.null_count / rows


def _overridden(name: str, argument: str, decided: KindDecision, stored: pa.DataType,
                file: str) -> str:
    """Why for a column named in ``dense=``/``categorical=``; a column the readers cannot read
    as that kind raises."""
    if decided.kind == "unsupported":
        raise BadInputError(f"{argument} column {name!r} has type {stored}, which is neither a "
                            "number nor text", file=file, reason="bad_file")
    if argument == "categorical" and pa.types.is_floating(stored):
        raise BadInputError(f"categorical column {name!r} holds floats ({stored}); store ids as "
                            "integers or text so they stay exact", file=file, reason="bad_file")
    reason = f"named in {argument}="
    if decided.kind != argument:
        reason += f" (the rule says {decided.kind}: {decided.reason})"
    return reason


def _criteo(path: Path, *, label: str | None, id_column: str | None, given: tuple[str, ...],
            infer_rest: bool, task: Task, sample_rows: int) -> InferredSchema:
    if label != "label" or id_column is not None or given or not infer_rest:
        raise ValueError(
            "the criteo format has a fixed layout (label, I1..I13, C1..C26): leave label, "
            "id_column, dense, categorical, exclude and infer_rest at their defaults"
        )
    table = sample_table(path, "criteo", rows=sample_rows)
    names = list(table.column_names)
    schema = criteo_schema(with_label=names[0] == "label")
    reports = []
    for name in names:
        kind: ColumnKind = "label" if name == schema.label else "dense" \
            if name in schema.dense else "categorical"
        distinct, missing = _stats(table.column(name).combine_chunks())
        t = decide_kind(name, table.column(name), text=True).arrow_type
        reports.append(ColumnReport(name, kind, t, distinct, missing, f"Criteo layout: {kind}"))
    return InferredSchema(TableSchema(schema.label, schema.dense, schema.categorical, task=task),
                          tuple(reports), str(path), table.num_rows)


def infer_schema(
    path: str | Path,
    fmt: Format,
    *,
    label: str | None = "label",
    id_column: str | None = None,
    dense: Sequence[str] = (),
    categorical: Sequence[str] = (),
    exclude: Sequence[str] = (),
    infer_rest: bool = True,
    task: Task = "binary",
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> InferredSchema:
    """Infer a table schema from a sample of the first shard, with a report on every column.

    Every column of the file is, in this order of precedence: the label, the id column,
    excluded (named in ``exclude``), dense or categorical as named in ``dense``/``categorical``,
    and otherwise as :func:`~crossrank.data.column_kind.decide_kind` decides from the sample
    (or excluded, when ``infer_rest=False``). A column whose type is neither a number nor
    text (a Parquet timestamp) is left out as ``"unsupported"`` unless named.

    The rule, in short (the full text, with its figures, is :mod:`crossrank.data.column_kind`):
    text, true/false and all-missing columns are categorical (a categorical field accepts
    any value that comes later, so an empty sample decides nothing irreversible); floating-point
    columns are dense; an integer column is categorical when a word of its name is an id word
    (``user_id``, ``zip_code``), when a value has a leading zero (``02139``), or when its
    distinct values fill at least 80% of their range with two or more rows each, as ids 1..N
    and small codes do (MovieLens: users, movies, ages), and dense otherwise, as counts,
    amounts and timestamps spread thinly over a wide range (Criteo's I1..I13, timestamps).

    Args:
        path: a file, or a directory or glob of shards (the first shard is sampled).
        fmt: ``"criteo"``, ``"csv"`` or ``"parquet"``. Criteo's layout is fixed: the other
            column arguments must keep their defaults.
        label: the label column, or ``None`` for unlabelled data.
        id_column: a row id column passed through to predictions, not a feature.
        dense: columns to read as dense features whatever the rule says.
        categorical: columns to read as categorical fields whatever the rule says.
        exclude: columns to leave out.
        infer_rest: ``False`` reads only the columns named in ``dense``/``categorical``.
        task: ``"binary"`` or ``"regression"``, recorded in the schema.
        sample_rows: rows of the first shard to read (fewer if it has fewer).

    Returns:
        The schema (``.schema``) and the report (``.format_table()``, ``.to_dict()``).

    Raises:
        BadInputError: a named column the file lacks (one line, with the nearest name the
            file has), an empty file, or no feature column left.
        ValueError: a column named by two arguments, or a bad argument value.

    Shape:
        Reads at most ``sample_rows`` rows; the report has one entry per file column.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "clicks.csv")
        >>> rows = [f"{i % 2},{i % 3},{i * 7.5},{'ab'[i % 2]}" for i in range(30)]
        >>> _ = open(p, "w").write("click,user_id,price,city\\n" + "\\n".join(rows) + "\\n")
        >>> found = infer_schema(p, "csv", label="click")
        >>> found.schema.dense, found.schema.categorical
        (('price',), ('user_id', 'city'))
        >>> found.column("user_id").reason
        "integers named like an id ('id' in 'user_id')"
        >>> try:
        ...     infer_schema(p, "csv", label="clicked")
        ... except BadInputError as e:
        ...     print(e.detail)  # doctest: +ELLIPSIS
        not in the file: label 'clicked' (did you mean 'click'?); its columns are ['click', ...]
    """
    _check_arguments(fmt, label, id_column, infer_rest, task, sample_rows)
    dense = _names(dense, "dense")
    categorical = _names(categorical, "categorical")
    exclude = _names(exclude, "exclude")
    assigned = _assigned(label, id_column, dense, categorical, exclude)
    file = list_shards(path)[0]
    if fmt == "criteo":
        return _criteo(file, label=label, id_column=id_column,
                       given=dense + categorical + exclude, infer_rest=infer_rest, task=task,
                       sample_rows=sample_rows)
    name = str(file)
    names = file_columns(file, fmt)
    if repeated(names):
        raise BadInputError(f"column(s) {repeated(names)} appear more than once; rename them",
                            file=name, reason="bad_file")
    absent = [(("id column" if arg == "id_column" else arg), n) for n, arg in assigned.items()
              if n not in names]
    if absent:
        raise BadInputError(f"not in the file: {describe_missing(absent, names)}; its columns "
                            f"are {show_columns(names)}", file=name, reason="bad_file")
    table = sample_table(file, fmt, rows=sample_rows)
    if table.num_rows == 0:
        raise BadInputError("no data rows to infer a schema from", file=name,
                            reason="empty_file")
    reports = []
    for column in names:
        values = table.column(column).combine_chunks()
        decided = decide_kind(column, values, text=fmt != "parquet")
        argument = assigned.get(column)
        kind: ColumnKind
        if argument == "label":
            kind, reason = "label", f"label (task {task!r})"
        elif argument == "id_column":
            kind, reason = "id", "id column, passed through"
        elif argument == "exclude":
            kind, reason = "excluded", "named in exclude="
        elif argument is not None:
            kind = "dense" if argument == "dense" else "categorical"
            reason = _overridden(column, kind, decided, values.type, name)
        elif not infer_rest:
            kind, reason = "excluded", "not named in dense= or categorical= (infer_rest=False)"
        else:
            kind, reason = decided.kind, decided.reason
        reports.append(ColumnReport(column, kind, decided.arrow_type, *_stats(values), reason))
    chosen_dense = tuple(r.name for r in reports if r.kind == "dense")
    chosen_categorical = tuple(r.name for r in reports if r.kind == "categorical")
    if not chosen_dense and not chosen_categorical:
        left = ", ".join(f"{r.name!r} ({r.kind})" for r in reports)
        raise BadInputError(f"no feature columns left: {left}", file=name, reason="bad_file")
    schema = TableSchema(label=label, dense=chosen_dense, categorical=chosen_categorical,
                         id_column=id_column, task=task)
    return InferredSchema(schema, tuple(reports), name, table.num_rows)
