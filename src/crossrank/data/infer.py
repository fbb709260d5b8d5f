"""Schema inference: which columns of a file are the label, dense features and categorical fields."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from crossrank.data.files import FORMATS, Format, list_shards
from crossrank.data.schema import (
    CRITEO_NUM_CATEGORICAL,
    CRITEO_NUM_DENSE,
    TableSchema,
    Task,
    criteo_schema,
)


def _first_line(path: Path) -> bytes:
    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(1 << 20)
    return head.split(b"\n", 1)[0].rstrip(b"\r")


def infer_schema(
    path: str | Path,
    fmt: Format,
    *,
    label: str | None = "label",
    id_column: str | None = None,
    task: Task = "binary",
) -> TableSchema:
    """Infer a schema from the first line (Criteo) or the header and types (CSV, Parquet).

    Criteo: 40 tab-separated fields are ``label, I1..I13, C1..C26``; 39 are the unlabelled
    test layout. CSV and Parquet: ``label`` and ``id_column`` are taken as named (``label`` is
    dropped if the file has no such column); other columns are dense when named like Criteo's
    ``I<n>`` or stored as numbers (Parquet), categorical otherwise. In CSV every non-``I<n>``
    column is categorical, because text cannot tell a count from an integer id.

    Args:
        path: a file, or a directory or glob of shards (the first shard is read).
        fmt: ``"criteo"``, ``"csv"`` or ``"parquet"``.
        label: name of the label column (CSV, Parquet).
        id_column: name of an id column to pass through (CSV, Parquet).
        task: task recorded in the schema.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    path = list_shards(path)[0]
    if fmt == "criteo":
        line = _first_line(path)
        if not line:
            raise ValueError(f"cannot infer a schema from {path.name}: the first line is empty")
        n = line.count(b"\t") + 1
        expected = CRITEO_NUM_DENSE + CRITEO_NUM_CATEGORICAL
        if n not in (expected, expected + 1):
            raise ValueError(
                f"{path.name} line 1 has {n} tab-separated fields; Criteo has {expected + 1} "
                f"(with label) or {expected} (without)"
            )
        return replace(criteo_schema(with_label=n == expected + 1), task=task)
    if fmt == "csv":
        import csv

        header = _first_line(path).decode("utf-8-sig")
        names = next(csv.reader([header]))
        numeric = {n for n in names if re.fullmatch(r"I\d+", n)}
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow_schema = pq.read_schema(str(path))
        names = list(arrow_schema.names)
        numeric = {
            f.name
            for f in arrow_schema
            if pa.types.is_floating(f.type)
            or pa.types.is_decimal(f.type)
            or (pa.types.is_integer(f.type) and re.fullmatch(r"I\d+", f.name))
        }
    if id_column is not None and id_column not in names:
        raise ValueError(f"id_column {id_column!r} is not a column of {path.name}: {names}")
    label = label if label in names else None
    rest = [n for n in names if n not in (label, id_column)]
    return TableSchema(
        label=label,
        dense=tuple(n for n in rest if n in numeric),
        categorical=tuple(n for n in rest if n not in numeric),
        id_column=id_column,
        task=task,
    )
