"""Streaming readers: Criteo TSV, CSV and Parquet files (or shards of them) as validated chunks.

Nothing is read whole and nothing is parsed line by line in Python: pyarrow's streaming CSV
reader parses every field as ``binary`` (so a bad value can never abort the stream) and
:func:`~crossrank.data.validate.validate_columns` types and checks each batch with vectorised
compute. Every yielded table has the columns of ``schema.column_names`` in that order (id
``string`` for text or its Parquet type, label and dense ``float64``, categorical ``string``;
missing values are nulls) and ``chunk_rows`` rows, except the last.

Line numbers are physical 1-based lines of the file, right across chunks and skipped rows:
pyarrow numbers the rows it cannot parse (that needs its serial reader, ``use_threads=False``,
which costs nothing measurable here: the streaming reader parses one block at a time anyway),
and a valid row's line follows from how many rows were delivered and skipped before it.

Formats:
    ``criteo``: no header, tab-separated, no quoting, fields ``label?, dense..., categorical...``
    in schema order (no id column). ``csv``: a header row naming the columns (extra columns are
    read and ignored), ``"`` quoting; a quoted value holding a line break is a bad row.
    ``parquet``: columns by name, read with ``iter_batches``; places are 0-based row indices.
    Text files ending in ``.gz``, ``.bz2``, ``.zst`` or ``.lz4`` are decompressed on the fly.

Missing values: a null or an empty string, in every format (:mod:`crossrank.data.validate`).
Any bytes are read: a row of binary garbage is a bad row like any other (wrong field count,
invalid UTF-8), never a traceback. Damage that stops a text file being read on (a truncated
or corrupt compressed stream, a record longer than the parser's block of at least 16 MiB)
keeps the rows before it and makes the rest of that file one bad piece (reason ``bad_file``)
placed at the first line not read: raised in ``"error"`` mode, logged once in ``"skip"`` mode,
where the reader goes on with the next file. In Parquet the bad piece is the rest of the
damaged row group, and the next row group is read. The rows in a bad piece cannot be counted,
since they cannot be read. gzip and zstd check their checksums at the end of a stream, so a
corrupt middle can first decode to wrong lines (rejected, or read if they happen to be valid)
before the damage is known; it is then reported all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pyarrow as pa

from crossrank.data.files import FORMATS, Format, list_shards
from crossrank.data.parquet_reader import iter_parquet
from crossrank.data.rejects import RejectsLog
from crossrank.data.schema import TableSchema
from crossrank.data.text_reader import TextFile

OnBadRows = Literal["error", "skip"]
ON_BAD_ROWS: tuple[str, ...] = ("error", "skip")


def _check_options(
    fmt: object, schema: object, chunk_rows: object, on_bad_rows: object, rejects: object
) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(schema, TableSchema):
        raise TypeError(f"schema must be a TableSchema, got {type(schema).__name__}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    if rejects is not None and not isinstance(rejects, RejectsLog):
        raise TypeError(f"rejects must be a RejectsLog or None, got {type(rejects).__name__}")
    if on_bad_rows == "skip" and rejects is None:
        raise ValueError(
            "on_bad_rows='skip' needs a RejectsLog (rejects=...) so skipped rows are counted "
            "and reported, got rejects=None"
        )
    if fmt == "criteo" and schema.id_column is not None:
        raise ValueError(
            f"the criteo format has no id column, got schema.id_column={schema.id_column!r}"
        )
    if fmt == "criteo" and (schema.weight is not None or schema.group not in
                            (None, *schema.feature_names)):
        raise ValueError("the criteo format has fixed columns: a weight or group column must "
                         f"be one of them, got weight={schema.weight!r}, group={schema.group!r}")


def iter_tables(
    path: str | Path,
    *,
    fmt: Format,
    schema: TableSchema,
    chunk_rows: int = 65536,
    on_bad_rows: OnBadRows = "error",
    rejects: RejectsLog | None = None,
    skip_label: bool = False,
    positions: str | None = None,
) -> Iterator[pa.Table]:
    """Stream validated chunks of a file, a directory of shards or a glob.

    Args:
        path: a file, a directory (its visible files, sorted) or a glob pattern.
        fmt: ``"criteo"``, ``"csv"`` or ``"parquet"`` (every shard has the same format).
        schema: the columns; ``schema.label=None`` reads unlabelled data for prediction.
        chunk_rows: rows per yielded table (the last may be shorter).
        on_bad_rows: ``"error"`` raises :class:`BadInputError` at the first bad row in file
            order; ``"skip"`` leaves bad rows out and records each in ``rejects``.
        rejects: where skipped rows go; required with ``"skip"``.
        skip_label: leave ``schema.label`` unread (prediction): CSV and Parquet do not read
            that column, and a Criteo file holds it as its first field, split off unchecked;
            the tables have no label column.
        positions: the name of an int64 column to add, last, with each row's place in its
            file, as bad rows are placed: the physical line (text) or the row index (Parquet).

    Missing columns, a column of the wrong type, a file that cannot be opened, a CSV header or
    a Parquet footer that cannot be read raise in both modes. Damage further on cuts the file
    short: the rows before are kept and the rest is one bad piece (reason ``bad_file``), raised
    or recorded once. An empty file is a bad "row" of its own: raised, or recorded with reason
    ``empty_file`` and skipped.

    Shape:
        Each table: (rows <= chunk_rows, len(schema.column_names)); rows out equal rows in
        minus the rows reported as bad.

    Example:
        >>> import tempfile, os
        >>> from crossrank.data.schema import TableSchema
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.tsv")
        >>> _ = open(p, "w").write("1\\t5\\tx\\n0\\t\\ty\\n")
        >>> s = TableSchema(label="y", dense=("n",), categorical=("c",))
        >>> [t.to_pydict() for t in iter_tables(p, fmt="criteo", schema=s)]
        [{'y': [1.0, 0.0], 'n': [5.0, None], 'c': ['x', 'y']}]
    """
    _check_options(fmt, schema, chunk_rows, on_bad_rows, rejects)
    if skip_label and schema.label is None:
        raise ValueError("skip_label=True needs the schema's label column, got label=None")
    if positions is not None and positions in schema.column_names:
        raise ValueError(f"positions must not name a column of the schema, got {positions!r}")
    files = list_shards(path)
    unread_label = schema.label if skip_label else None
    if skip_label:
        schema = replace(schema, label=None, extra_labels=(), extra_tasks=())

    def pieces() -> Iterator[pa.Table]:
        for file in files:
            if fmt == "parquet":
                yield from iter_parquet(file, schema, chunk_rows, on_bad_rows, rejects,
                                        positions=positions)
            else:
                yield from TextFile(file, fmt, schema, chunk_rows, on_bad_rows, rejects,
                                    unread_label=unread_label if fmt == "criteo" else None,
                                    positions=positions)

    return _released(_rechunk(pieces(), chunk_rows))


def _released(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """``tables``, handing the memory of the chunks before each back to the system.

    pyarrow's default allocator (mimalloc) keeps freed pages for reuse, and over a long
    stream of chunks its resident memory drifts upwards: 617 -> 678 MB of peak RSS reading 1M
    vs 10M Criteo rows; with ``release_unused`` after every chunk, 582 -> 610 MB. It costs
    nothing measurable (one call per 65,536 rows).
    """
    pool = pa.default_memory_pool()
    for table in tables:
        pool.release_unused()
        yield table


def read_table(
    path: str | Path,
    *,
    fmt: Format,
    schema: TableSchema,
    on_bad_rows: OnBadRows = "error",
    rejects: RejectsLog | None = None,
) -> pa.Table:
    """Everything :func:`iter_tables` yields, as one table (for data that fits in memory)."""
    tables = list(
        iter_tables(path, fmt=fmt, schema=schema, on_bad_rows=on_bad_rows, rejects=rejects)
    )
    if not tables:
        return empty_table(schema)
    return pa.concat_tables(tables)


def empty_table(schema: TableSchema) -> pa.Table:
    """A zero-row table with the reader's column types."""
    types = {n: pa.string() for n in schema.categorical + schema.multi_valued_names}
    types |= {n: pa.float64() for n in schema.dense}
    types |= {n: pa.float64() for n in schema.labels}
    if schema.id_column is not None:
        types[schema.id_column] = pa.string()
    if schema.weight is not None:
        types[schema.weight] = pa.float64()
    if schema.group is not None:
        types.setdefault(schema.group, pa.string())
    return pa.table({n: pa.array([], types[n]) for n in schema.column_names})


def _rechunk(pieces: Iterable[pa.Table], chunk_rows: int) -> Iterator[pa.Table]:
    buffer: list[pa.Table] = []
    buffered = 0
    for piece in pieces:
        if piece.num_rows == 0:
            continue
        if not buffer and piece.num_rows == chunk_rows:
            yield piece
            continue
        buffer.append(piece)
        buffered += piece.num_rows
        while buffered >= chunk_rows:
            whole = pa.concat_tables(buffer)
            yield whole.slice(0, chunk_rows).combine_chunks()
            rest = whole.slice(chunk_rows)
            buffer, buffered = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
    if buffered:
        yield pa.concat_tables(buffer).combine_chunks()
