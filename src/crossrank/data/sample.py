"""What a data file holds before any schema is known: its column names and its first rows.

Schema inference (:mod:`crossrank.data.infer`) and the column check for prediction
(:mod:`crossrank.data.column_check`) start here. Text is read the way the readers read it
(:mod:`crossrank.data.readers`): every field as ``binary``, only an empty field missing, ``"``
quoting in CSV and none in Criteo files, compressed text decompressed on the fly. So a value
counts as a number here exactly when the readers can parse it as one.

A sample skips the rows pyarrow cannot split into the header's number of fields (the readers
report those when they read the file) and ends early at a row pyarrow cannot hand over at all;
it never fails on a value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from crossrank.data.files import Format
from crossrank.data.schema import CRITEO_NUM_CATEGORICAL, CRITEO_NUM_DENSE, criteo_schema
from crossrank.errors import BadInputError

_HEAD_BYTES = 1 << 20
SAMPLE_BYTES = 64 << 20  # a sample stops at the batch that passes this many bytes


def first_line(path: Path) -> bytes:
    """The first line of a text file (decompressed), without its line break."""
    with pa.input_stream(str(path), compression="detect") as f:
        head = f.read(_HEAD_BYTES)
        while b"\n" not in head:
            more = f.read(_HEAD_BYTES)
            if not more:
                break
            head += more
    return head.split(b"\n", 1)[0].rstrip(b"\r")


def criteo_columns(path: Path) -> list[str]:
    """Criteo's column names, told apart by the first line's field count (40: with label)."""
    line = first_line(path)
    if not line:
        raise BadInputError("the first line is empty", file=str(path), line=1, reason="bad_file")
    n = line.count(b"\t") + 1
    expected = CRITEO_NUM_DENSE + CRITEO_NUM_CATEGORICAL
    if n not in (expected, expected + 1):
        raise BadInputError(
            f"{n} tab-separated fields; Criteo has {expected + 1} (with label) or {expected} "
            "(without)",
            file=str(path), line=1, reason="wrong_field_count",
        )
    return list(criteo_schema(with_label=n == expected + 1).column_names)


def csv_header(path: Path) -> list[str]:
    """The column names in a CSV file's header (an empty or undecodable header raises)."""
    line = first_line(path)
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInputError(
            "invalid UTF-8 in the header", file=str(path), line=1, reason="invalid_utf8"
        ) from e
    if not text.strip():
        raise BadInputError(
            "no header (the first line is empty)", file=str(path), line=1, reason="bad_file"
        )
    return next(csv.reader([text]))


def repeated(names: list[str]) -> list[str]:
    """The names that appear more than once, sorted.

    Example:
        >>> repeated(["a", "b", "a"])
        ['a']
    """
    return sorted({n for n in names if names.count(n) > 1})


def parquet_schema(path: Path) -> pa.Schema:
    """The Arrow schema of a Parquet file; an unreadable file raises naming it."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(str(path))
    except (pa.ArrowInvalid, OSError) as e:
        raise BadInputError(f"cannot read as Parquet: {e}", file=str(path), reason="bad_file") from e


def file_columns(path: Path, fmt: Format) -> list[str]:
    """The column names of one file: the CSV header, the Parquet schema, Criteo's layout.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
        >>> _ = open(p, "w").write("y,price,city\\n1,2.5,paris\\n")
        >>> file_columns(Path(p), "csv")
        ['y', 'price', 'city']
    """
    if fmt == "csv":
        return csv_header(path)
    if fmt == "parquet":
        return list(parquet_schema(path).names)
    return criteo_columns(path)


def sample_table(path: Path, fmt: Format, *, rows: int) -> pa.Table:
    """The first ``rows`` rows of one file: text as ``binary`` columns, Parquet as stored.

    A wide file's sample ends sooner, at the batch that passes :data:`SAMPLE_BYTES` (64 MiB).

    Shape:
        (at most ``rows``, every column of the file).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
        >>> _ = open(p, "w").write("y,city\\n1,paris\\n0,\\n1,rome\\n")
        >>> sample_table(Path(p), "csv", rows=2).to_pydict()
        {'y': [b'1', b'0'], 'city': [b'paris', None]}
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive int, got {rows!r}")
    if fmt == "parquet":
        return _sample_parquet(path, rows)
    names = file_columns(path, fmt)
    read = pa_csv.ReadOptions(column_names=names, skip_rows=1 if fmt == "csv" else 0,
                              use_threads=False)
    parse = pa_csv.ParseOptions(
        delimiter="," if fmt == "csv" else "\t",
        quote_char='"' if fmt == "csv" else False,
        newlines_in_values=fmt == "csv",
        invalid_row_handler=lambda row: "skip",
    )
    convert = pa_csv.ConvertOptions(
        column_types={n: pa.binary() for n in names}, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True,
    )
    batches: list[pa.RecordBatch] = []
    got = size = 0
    try:
        with pa.input_stream(str(path), compression="detect") as source, pa_csv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            for batch in reader:
                batches.append(batch)
                got += batch.num_rows
                size += batch.nbytes
                if got >= rows or size >= SAMPLE_BYTES:
                    break
    except pa.ArrowInvalid as e:
        # A row pyarrow cannot hand to the skip handler ends the sample early; only a file
        # with no readable row at all fails.
        if not batches and "Empty CSV file" not in str(e):
            raise BadInputError(
                f"cannot read a sample: {str(e).splitlines()[0]}", file=str(path),
                reason="bad_file",
            ) from e
    schema = pa.schema([(n, pa.binary()) for n in names])
    return pa.Table.from_batches(batches, schema=schema).slice(0, rows).combine_chunks()


def _sample_parquet(path: Path, rows: int) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
        batches: list[pa.RecordBatch] = []
        got = size = 0
        for batch in pf.iter_batches(batch_size=min(rows, 65536)):
            batches.append(batch)
            got += batch.num_rows
            size += batch.nbytes
            if got >= rows or size >= SAMPLE_BYTES:
                break
    except (pa.ArrowInvalid, OSError) as e:
        raise BadInputError(f"cannot read as Parquet: {e}", file=str(path), reason="bad_file") from e
    table = pa.Table.from_batches(batches, schema=pf.schema_arrow)
    return table.slice(0, rows).combine_chunks()
