"""One Criteo TSV or CSV file as validated tables, with exact physical line numbers.

pyarrow's serial streaming reader parses every field as ``binary`` in a background thread
(:func:`~crossrank.data.prefetch.prefetch_batches`) while the caller validates and encodes.
Rows with the wrong number of fields reach :meth:`TextFile._handler` with their record number;
a valid row's record number follows from how many valid rows came before it and which records
were invalid (:meth:`TextFile._records`). Physical line = ``line_base + record`` plus, in CSV, the line
breaks inside earlier quoted values.

A row that has the wrong number of fields *and* is not valid UTF-8 makes pyarrow fail (it
cannot decode the row's text for the handler), which ends that reader. In Criteo files the
reader then resumes: the lines between the last delivered row and the failing line are parsed
as a segment of their own (so an earlier bad row is still reported first), the failing line is
reported (raised, or logged), and with ``on_bad_rows="skip"`` a new reader starts on the next
line. Each resume scans the file from the start for line offsets, so it costs one pass over
the bytes before the failing line. CSV files (where a record may span lines) raise instead.
"""

from __future__ import annotations

import csv
import re
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from crossrank.data.prefetch import prefetch_batches
from crossrank.data.rejects import BadInputError, RejectsLog
from crossrank.data.schema import TableSchema
from crossrank.data.validate import validate_columns

_SAMPLE_BYTES = 1 << 20
_SCAN_BYTES = 1 << 24


def report(
    error: BadInputError, raw: str | None, on_bad_rows: str, rejects: RejectsLog | None
) -> None:
    """Raise ``error`` (``on_bad_rows="error"``) or log it and go on."""
    if on_bad_rows == "error" or rejects is None:
        raise error
    rejects.add(error, raw=raw)


def _newlines(text: str | bytes) -> int:
    """Line breaks inside one record (CRLF counts once), to keep physical line numbers."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _line_offsets(name: str, lines: list[int]) -> dict[int, int]:
    """Byte offset where each 1-based physical line starts (the file size past the end)."""
    remaining = sorted(set(lines))
    out = {t: 0 for t in remaining if t <= 1}
    remaining = [t for t in remaining if t > 1]
    seen = pos = 0  # newlines before the current block; its first byte's offset
    with pa.input_stream(name, compression="detect") as f:
        while remaining:
            block = f.read(_SCAN_BYTES)
            if not block:
                break
            breaks = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            while remaining and remaining[0] - 1 - seen <= len(breaks):
                target = remaining.pop(0)  # starts just after newline number target - 1
                out[target] = pos + int(breaks[target - 2 - seen]) + 1
            seen += len(breaks)
            pos += len(block)
    out.update({t: pos for t in remaining})
    return out


def _open_at(name: str, offset: int, length: int | None) -> pa.NativeFile:
    """A stream over the file's (decompressed) bytes from ``offset``, ``length`` of them."""
    f = pa.input_stream(name, compression="detect")
    try:
        f.seek(offset)
    except (OSError, pa.ArrowNotImplementedError, NotImplementedError):
        _skip(f, offset)  # a compressed stream cannot seek: read and drop the bytes instead
    if length is None:
        return f
    data = f.read(length)
    f.close()
    return pa.BufferReader(data)


def _skip(f: pa.NativeFile, n: int) -> None:
    while n > 0:
        got = len(f.read(min(n, _SCAN_BYTES)))
        if got == 0:
            return
        n -= got


@dataclass(frozen=True)
class _Segment:
    source: pa.NativeFile
    line_base: int  # physical line of the source's first line, minus one
    skip_rows: int


@dataclass(frozen=True)
class _Logged:
    error: BadInputError
    raw: str


class TextFile:
    """Validated tables from one Criteo TSV (``fmt="criteo"``) or CSV file."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        schema: TableSchema,
        chunk_rows: int,
        on_bad_rows: str,
        rejects: RejectsLog | None,
    ) -> None:
        self.name, self.fmt, self.schema = str(path), fmt, schema
        self.chunk_rows, self.on_bad_rows, self.rejects = chunk_rows, on_bad_rows, rejects
        self.delimiter = "\t" if fmt == "criteo" else ","
        self.extra_lines: dict[int, int] = {}  # CSV: record -> line breaks inside it
        self.rows_seen = 0  # rows pyarrow handed over or rejected, over all segments

    # ------------------------------------------------------------- segment state
    def _start_segment(self, line_base: int, skip_rows: int) -> None:
        self.line_base = line_base  # physical line = line_base + record (+ CSV extra lines)
        self.first_record = skip_rows + 1
        # Records pyarrow could not parse, in order: (record number, text, fields found).
        self.invalid: list[tuple[int, str, int]] = []
        self.consumed = 0  # how many of self.invalid have been reported
        self.last_line = line_base + skip_rows  # last physical line fully handled

    def _handler(self, row: pa_csv.InvalidRow) -> str:
        self.invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    def _line(self, record: int) -> int:
        """Physical line where ``record`` (pyarrow's 1-based record number) starts."""
        extra = sum(n for r, n in self.extra_lines.items() if r < record)
        return self.line_base + record + extra

    def _records(self, first_valid: int, n: int) -> np.ndarray:
        """Record numbers of this segment's valid rows ``first_valid .. first_valid + n - 1``."""
        invalid = np.asarray([r for r, _, _ in self.invalid], dtype=np.int64)
        gaps = invalid - self.first_record - np.arange(len(invalid))  # valid rows before each
        k = first_valid + np.arange(n, dtype=np.int64)
        return self.first_record + k + np.searchsorted(gaps, k, side="right")

    # ------------------------------------------------------------------ opening
    def _header(self, head: bytes) -> list[str]:
        line = head.split(b"\n", 1)[0].rstrip(b"\r")
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise BadInputError(
                "invalid UTF-8 in the header", file=self.name, line=1, reason="invalid_utf8"
            ) from e
        names = next(csv.reader([text]))
        missing = [c for c in self.schema.column_names if c not in names]
        if missing:
            raise BadInputError(
                f"missing column(s) {missing}; the header has {names}",
                file=self.name, line=1, reason="bad_file",
            )
        doubled = sorted({c for c in self.schema.column_names if names.count(c) > 1})
        if doubled:
            raise BadInputError(
                f"column(s) {doubled} appear more than once in the header",
                file=self.name, line=1, reason="bad_file",
            )
        return names

    def _reader(self, source: pa.NativeFile, skip_rows: int) -> pa_csv.CSVStreamingReader:
        read = pa_csv.ReadOptions(
            column_names=self.columns, skip_rows=skip_rows, use_threads=False,
            block_size=self.block_size,
        )
        parse = pa_csv.ParseOptions(
            delimiter=self.delimiter,
            quote_char='"' if self.fmt == "csv" else False,
            newlines_in_values=self.fmt == "csv",
            ignore_empty_lines=False,
            invalid_row_handler=self._handler,
        )
        convert = pa_csv.ConvertOptions(
            column_types={c: pa.binary() for c in self.columns},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        return pa_csv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )

    def __iter__(self) -> Iterator[pa.Table]:
        with pa.input_stream(self.name, compression="detect") as f:
            head = f.read(_SAMPLE_BYTES)
        if not head:
            error = BadInputError("empty file (no data rows)", file=self.name, reason="empty_file")
            report(error, None, self.on_bad_rows, self.rejects)
            return
        if self.fmt == "csv":
            self.columns = self._header(head)
            skip_rows = 1
        else:
            s = self.schema
            self.columns = ([s.label] if s.label is not None else []) + [*s.dense, *s.categorical]
            skip_rows = 0
        bytes_per_row = len(head) / max(head.count(b"\n"), 1)
        self.block_size = int(min(max(bytes_per_row * self.chunk_rows * 1.02, 1 << 16), 1 << 30))
        # Work in file order: segments to read, and lines logged by a resume in between.
        work: deque[_Segment | _Logged] = deque(
            [_Segment(pa.input_stream(self.name, compression="detect"), 0, skip_rows)]
        )
        while work:
            item = work.popleft()
            if isinstance(item, _Logged):
                report(item.error, item.raw, self.on_bad_rows, self.rejects)
                continue
            self._start_segment(item.line_base, item.skip_rows)
            crash = yield from self._segment(item.source, item.skip_rows)
            if crash is not None:
                work.extendleft(reversed(self._resume(crash)))
        if self.rows_seen == 0:
            error = BadInputError("empty file (no data rows)", file=self.name, reason="empty_file")
            report(error, None, self.on_bad_rows, self.rejects)

    def _segment(
        self, source: pa.NativeFile, skip_rows: int
    ) -> Generator[pa.Table, None, pa.ArrowInvalid | None]:
        """Yield this segment's tables; return the parse error that ended it, if any."""
        delivered = 0
        try:
            try:  # opening parses the first block
                reader = self._reader(source, skip_rows)
            except pa.ArrowInvalid as e:
                if "Empty CSV file" in str(e):
                    return None
                return e
            with reader:
                for batch in prefetch_batches(reader):
                    if isinstance(batch, pa.ArrowInvalid):
                        return batch
                    table = self._batch(batch, delivered)
                    delivered += batch.num_rows
                    self.rows_seen += batch.num_rows
                    if table.num_rows:
                        yield table
            self._report_invalid(None)
            return None
        finally:
            source.close()

    def _resume(self, crash: pa.ArrowInvalid) -> list[_Segment | _Logged]:
        """What reads on past the line that broke the reader: the lines before it, the line
        itself (logged), the rest of the file."""
        message = str(crash).splitlines()[0] if str(crash) else repr(crash)
        found = re.search(r"Row #(\d+): Expected (\d+) columns, got (\d+)", message)
        if not found:
            raise BadInputError(f"cannot parse: {message}", file=self.name, reason="bad_file")
        line = self._line(int(found.group(1)))
        detail = f"expected {found.group(2)} fields, got {found.group(3)} (and invalid UTF-8)"
        error = BadInputError(detail, file=self.name, line=line, reason="wrong_field_count")
        if self.fmt != "criteo":
            raise BadInputError(detail + "; this row cannot be skipped in CSV",
                                file=self.name, line=line, reason="wrong_field_count") from crash
        # With on_bad_rows="error" too, the lines before it are read first: one of them may be
        # the first bad row; otherwise reporting this line raises.
        resume_at = self.last_line + 1
        offsets = _line_offsets(self.name, [resume_at, line, line + 1])
        with _open_at(self.name, offsets[line], offsets[line + 1] - offsets[line]) as f:
            raw = f.read().rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
        self.rows_seen += 1
        work: list[_Segment | _Logged] = []
        if offsets[line] > offsets[resume_at]:
            before = _open_at(self.name, offsets[resume_at], offsets[line] - offsets[resume_at])
            work.append(_Segment(before, resume_at - 1, 0))
        work.append(_Logged(error, raw))
        if offsets[line + 1] > offsets[line] and self.on_bad_rows == "skip":
            work.append(_Segment(_open_at(self.name, offsets[line + 1], None), line, 0))
        return work

    # ---------------------------------------------------------------- bad rows
    def _report_invalid(self, before: int | None) -> list[tuple[int, BadInputError, str]]:
        """Unreported unparseable records before record ``before`` (all if None): reported
        now when ``before`` is None, else returned to be merged with a batch's issues."""
        out = []
        expected = len(self.columns)
        while self.consumed < len(self.invalid):
            record, text, found = self.invalid[self.consumed]
            if before is not None and record >= before:
                break
            self.consumed += 1
            self.rows_seen += 1
            if self.fmt == "csv" and _newlines(text):
                self.extra_lines[record] = _newlines(text)
            line = self._line(record)
            self.last_line = max(self.last_line, line)
            error = BadInputError(
                f"expected {expected} fields, got {found}",
                file=self.name, line=line, reason="wrong_field_count",
            )
            out.append((record, error, text))
        if before is None:
            for _, error, text in out:
                report(error, text, self.on_bad_rows, self.rejects)
        return out

    def _batch(self, batch: pa.RecordBatch, delivered: int) -> pa.Table:
        n = batch.num_rows
        fields = batch.columns
        columns = {c: batch.column(c) for c in self.schema.column_names}
        table, issues = validate_columns(
            columns, self.schema, num_rows=n, row_fields=fields,
            check_line_breaks=self.fmt == "csv",
        )
        if n == 0:
            return table  # unparseable records wait for a batch (or the end) to order them
        if issues is None and self.consumed == len(self.invalid):
            if self.fmt == "criteo":  # only Criteo files resume, and only they need this
                self.last_line = self.line_base + int(self._records(delivered + n - 1, 1)[0])
            return table
        records = self._records(delivered, n)
        if issues is not None and self.fmt == "csv":
            # register line breaks of this batch's rows before any line number is computed
            for i in issues.rows:
                extra = sum(_newlines(f[int(i)].as_py() or b"") for f in fields)
                if extra:
                    self.extra_lines[int(records[i])] = extra
        events = self._report_invalid(int(records[-1]))
        self.last_line = max(self.last_line, self._line(int(records[-1])))
        if issues is not None:
            for i, column, reason, detail in zip(
                issues.rows, issues.columns, issues.reasons, issues.details, strict=True
            ):
                record = int(records[i])
                error = BadInputError(
                    detail, file=self.name, line=self._line(record), column=column, reason=reason
                )
                raw = "" if reason == "blank_row" else self.delimiter.join(
                    (f[int(i)].as_py() or b"").decode("utf-8", errors="backslashreplace")
                    for f in fields
                )
                events.append((record, error, raw))
        events.sort(key=lambda e: e[0])
        for _, error, raw in events:
            report(error, raw, self.on_bad_rows, self.rejects)
        if issues is not None:
            keep = np.ones(n, dtype=bool)
            keep[issues.rows] = False
            table = table.filter(pa.array(keep))
        return table
