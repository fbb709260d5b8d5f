"""What a data file holds before any schema is known: its column names and its first rows.

Schema inference (:mod:`crossrank.data.infer`) and the column check for prediction
(:mod:`crossrank.data.column_check`) start here. Text is read the way the readers read it
(:mod:`crossrank.data.readers`): every field as ``binary`` through the same
:class:`~crossrank.data.text_source.TextSource`, only an empty field missing (an empty Parquet
string too), ``"`` quoting in CSV and none in Criteo files, compressed text decompressed on the
fly. So a value counts as a number here exactly when the readers can parse it as one.

A sample skips the rows pyarrow cannot split into the header's number of fields (the readers
report those when they read the file) and ends early where the file is damaged; it never fails
on a value, and fails on damage only when not one row could be read.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from crossrank.data.files import Format
from crossrank.data.parquet_reader import open_parquet
from crossrank.data.schema import CRITEO_NUM_CATEGORICAL, CRITEO_NUM_DENSE, criteo_schema
from crossrank.data.text_source import TextSource, restore
from crossrank.data.validate import empty_as_missing
from crossrank.errors import BadInputError

_HEAD_BYTES = 1 << 20
SAMPLE_BYTES = 64 << 20  # a sample stops at the batch that passes this many bytes


def open_text(path: Path, *, widen: bool) -> TextSource:
    """A :class:`TextSource` over ``path``; a file that cannot be opened raises naming it."""
    try:
        return TextSource(path, widen=widen)
    except OSError as e:
        lines = str(e).strip().splitlines()
        raise BadInputError(f"cannot open: {lines[0] if lines else type(e).__name__}",
                            file=str(path), reason="bad_file") from e


def first_line(path: Path) -> bytes:
    """The first line of a text file (decompressed), without its line break (LF, CR, CRLF)."""
    parts: list[bytes] = []
    with open_text(path, widen=False) as f:
        while True:
            more = f.read(_HEAD_BYTES)
            parts.append(more)
            if not more or b"\n" in more or b"\r" in more:
                break
        if not parts[0] and f.damage is not None:
            raise BadInputError(f.damage, file=str(path), line=1, reason="bad_file")
    return b"".join(parts).replace(b"\r", b"\n").split(b"\n", 1)[0]


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
    return open_parquet(path).schema_arrow


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
    with open_text(path, widen=True) as source:
        try:
            with pa_csv.open_csv(source, read_options=read, parse_options=parse,
                                 convert_options=convert) as reader:
                for batch in reader:
                    batches.append(batch)
                    got += batch.num_rows
                    size += batch.nbytes
                    if got >= rows or size >= SAMPLE_BYTES:
                        break
        except (pa.ArrowInvalid, OSError) as e:
            # A record too long for the parser's block ends the sample early; only a file
            # with no readable row at all fails.
            if not batches and "Empty CSV file" not in str(e):
                lines = str(e).strip().splitlines()
                raise BadInputError(
                    f"cannot read a sample: {lines[0] if lines else type(e).__name__}",
                    file=str(path), reason="bad_file",
                ) from e
        if not batches and source.damage is not None:
            raise BadInputError(source.damage, file=str(path), line=1, reason="bad_file")
    schema = pa.schema([(n, pa.binary()) for n in names])
    table = pa.Table.from_batches(batches, schema=schema).slice(0, rows).combine_chunks()
    return pa.table([restore(c.combine_chunks()) for c in table.columns], schema=schema)


def _sample_parquet(path: Path, rows: int) -> pa.Table:
    pf = open_parquet(path)
    batches: list[pa.RecordBatch] = []
    got = size = 0
    try:
        for batch in pf.iter_batches(batch_size=min(rows, 65536)):
            batches.append(batch)
            got += batch.num_rows
            size += batch.nbytes
            if got >= rows or size >= SAMPLE_BYTES:
                break
    except (pa.ArrowException, OSError) as e:
        if not batches:  # damage after a first batch ends the sample early
            lines = str(e).strip().splitlines()
            raise BadInputError(
                f"damaged Parquet data ({lines[0] if lines else type(e).__name__})",
                file=str(path), row=0, reason="bad_file") from e
    table = pa.Table.from_batches(batches, schema=pf.schema_arrow).slice(0, rows)
    table = table.combine_chunks()
    # an empty string is a missing value, as the readers read it
    return pa.table([empty_as_missing(c.combine_chunks()) for c in table.columns],
                    names=table.column_names)
