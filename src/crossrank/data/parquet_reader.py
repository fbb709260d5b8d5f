"""One Parquet file as validated tables: opening it with one-line errors, its column types
checked before any row is read, and damage met mid-file cut short like a text file's.

Places are 0-based row indices. A file that is not Parquet, or whose footer (the schema and
the row groups' places) is damaged, cannot be read at all and raises in both modes, like a
file that lacks a column. Row groups are read one at a time, so damage found inside one (a
flipped byte in a compressed page) keeps the rows before it and makes the rest of that row
group one bad piece with reason ``bad_file`` at the first row not read: raised with
``on_bad_rows="error"``; logged once with ``"skip"``, which goes on with the next row group
(the footer says where each starts). Pages written without checksums (pyarrow's default) can
hold a flipped byte that still decodes; nothing after the fact can tell.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from crossrank.data.column_roles import column_roles, column_type_problem
from crossrank.data.files import compression_of
from crossrank.data.rejects import BadInputError, RejectsLog, report
from crossrank.data.schema import TableSchema
from crossrank.data.validate import validate_columns

if TYPE_CHECKING:
    import pyarrow.parquet as pq


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """The file's Parquet reader; a file that is not Parquet, or is damaged past reading its
    schema, raises :class:`BadInputError` naming it (reason ``bad_file``)."""
    import pyarrow.parquet as pq

    name = str(path)
    codec = compression_of(path)
    if codec is not None:
        raise BadInputError(
            f"Parquet cannot be read through {codec} compression of the whole file; decompress "
            "it first (Parquet compresses its own pages)", file=name, reason="bad_file")
    try:
        return pq.ParquetFile(name)
    except (OSError, pa.ArrowException) as e:
        why = _first_line(e)
        if "magic bytes" in why or "size is 0" in why:
            detail = ("not a Parquet file: it does not end with Parquet's 'PAR1' marker (cut "
                      "short while written or copied, or another format such as CSV or TSV)")
        else:
            detail = f"damaged Parquet file: its footer (schema, row groups) is unreadable ({why})"
        raise BadInputError(detail, file=name, reason="bad_file") from e


def iter_parquet(
    path: Path,
    schema: TableSchema,
    chunk_rows: int,
    on_bad_rows: str,
    rejects: RejectsLog | None,
    *,
    positions: str | None = None,
) -> Iterator[pa.Table]:
    """Validated tables of ``chunk_rows`` rows (fewer where bad rows were left out), with a
    column ``positions`` of each row's index when it is named."""
    name = str(path)
    pf = open_parquet(path)
    file_schema = pf.schema_arrow
    missing = [c for c in schema.column_names if c not in file_schema.names]
    if missing:
        raise BadInputError(
            f"missing column(s) {missing}; the file has {file_schema.names}",
            file=name, reason="bad_file",
        )
    for field, role in column_roles(schema).items():
        problem = column_type_problem(role, file_schema.field(field).type)
        if problem is not None:
            raise BadInputError(problem, file=name, column=field, reason="bad_file")
    if pf.metadata.num_rows == 0:
        report(BadInputError("empty file (no rows)", file=name, reason="empty_file"),
               None, on_bad_rows, rejects)
        return
    row0 = 0
    columns = list(schema.column_names)
    for group in range(pf.metadata.num_row_groups):
        group_rows = pf.metadata.row_group(group).num_rows
        end = row0 + group_rows
        batches = pf.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns)
        while row0 < end:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (OSError, pa.ArrowException) as e:
                error = BadInputError(
                    f"damaged Parquet data in row group {group} ({_first_line(e)}); its rows "
                    f"{row0}..{end - 1} are unread", file=name, row=row0, reason="bad_file")
                report(error, None, on_bad_rows, rejects)
                break
            yield _checked(batch, schema, name, row0, on_bad_rows, rejects, positions)
            row0 += batch.num_rows
        row0 = end


def _checked(batch: pa.RecordBatch, schema: TableSchema, name: str, row0: int,
             on_bad_rows: str, rejects: RejectsLog | None, positions: str | None) -> pa.Table:
    """One batch validated: its bad rows reported (raised or logged) and left out."""
    n = batch.num_rows
    columns = {c: batch.column(c) for c in schema.column_names}
    try:
        table, issues = validate_columns(columns, schema, num_rows=n)
    except TypeError as e:
        raise BadInputError(str(e), file=name, reason="bad_file") from e
    if positions is not None:
        table = table.append_column(positions, pa.array(row0 + np.arange(n), pa.int64()))
    if issues is not None:
        for i, column, reason, detail in zip(
            issues.rows, issues.columns, issues.reasons, issues.details, strict=True
        ):
            error = BadInputError(
                detail, file=name, row=row0 + int(i), column=column, reason=reason
            )
            report(error, None, on_bad_rows, rejects)
        keep = np.ones(n, dtype=bool)
        keep[issues.rows] = False
        table = table.filter(pa.array(keep))
    return table
