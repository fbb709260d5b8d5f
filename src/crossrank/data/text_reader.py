"""One Criteo TSV or CSV file as validated tables, with exact physical line numbers.

pyarrow's serial streaming reader parses every field as ``binary`` in a background thread
(:func:`~crossrank.data.prefetch.prefetch_batches`) while the caller validates and encodes. It
reads a :class:`~crossrank.data.text_source.TextSource`, which decompresses the file and widens
every byte above 0x7f, so that any row, binary garbage too, reaches pyarrow's invalid-row
handler as text; fields are narrowed back to the file's bytes before they are validated.

Rows with the wrong number of fields reach :meth:`TextFile._handler` with their record number;
a valid row's record number follows from how many valid rows came before it and which records
were invalid (:meth:`TextFile._records`). Physical line = record number plus, in CSV, the line
breaks inside earlier quoted values (LF, CR and CRLF each end a line).

The parser reads blocks of 1 MiB first: pyarrow parses them about twice as fast as big
blocks (a chunk's bytes, at least 16 MiB), which leave the core's cache. A record longer than
a small block stops that parse, and the file is read again with the big block, the rows
already handed on and the bad records already met skipped (:meth:`TextFile._parse`), so the
tables, rejects and line numbers are those of one read. The parsed blocks are checked
together, a chunk's rows at a time (:meth:`TextFile._hand_on`), not block by block: the
checks' fixed cost per call and column is then paid once a chunk.

When the file cannot be read on (a compressed stream that is truncated or corrupt, a record
longer than the parser's big block), the rows before are kept and the rest of the file is one
bad piece with reason ``bad_file``, placed at the first line not read: raised with
``on_bad_rows="error"``, logged once with ``"skip"`` (the reader goes on with the next file).
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from crossrank.data.prefetch import prefetch_batches
from crossrank.data.rejects import BadInputError, RejectsLog, report
from crossrank.data.schema import TableSchema
from crossrank.data.text_source import TextSource, original, restore
from crossrank.data.validate import RowIssues, show_names, show_value, validate_columns

_SAMPLE_BYTES = 1 << 20
# pyarrow parses a block of 1 MiB about twice as fast as one of 16 MiB (it stays in the
# core's cache), but a record may straddle two blocks, never three: a file is first read in
# blocks of _FAST_BLOCK, and one with a longer record is read again with the big block
_FAST_BLOCK = 1 << 20
_MIN_BLOCK = 16 << 20  # a record up to this long always parses (the big block is at least this)
_MAX_BLOCK = 1 << 30
# Parsed blocks waiting for the validating thread. Blocks are validated together, a chunk
# at a time (see TextFile._hand_on), so the parser must run some blocks ahead to overlap the
# checks of the chunk before: on 2 cores, 8 blocks encoded 444,000 rows/s where 2 made
# 422,000 and 34 (two chunks) 416,000 (500k rows with a multi-valued column, 5 rounds each)
_PARSED_AHEAD = 8


def _newlines(text: str | bytes) -> int:
    """Line breaks inside one record (CRLF counts once), to keep physical line numbers."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    return text.count(b"\n") + text.count(b"\r") - text.count(b"\r\n")


def _raw(data: bytes) -> str:
    """A row's bytes for the rejects log: invalid UTF-8 shown with backslash escapes."""
    return data.decode("utf-8", errors="backslashreplace")


class _Bad(NamedTuple):
    """A bad record waiting to be reported in file order."""

    record: int
    breaks: int  # line breaks inside it (CSV quoted values)
    detail: str
    reason: str
    column: str | None
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
        *,
        unread_label: str | None = None,
        positions: str | None = None,
    ) -> None:
        """``unread_label``: Criteo only, the name of a label field the file holds first and
        ``schema`` leaves out (split off, never checked); ``positions``: the name of a column
        to add with each row's physical line."""
        self.name, self.fmt, self.schema = str(path), fmt, schema
        self.unread_label, self.positions = unread_label, positions
        self.chunk_rows, self.on_bad_rows, self.rejects = chunk_rows, on_bad_rows, rejects
        self.delimiter = "\t" if fmt == "criteo" else ","
        self.rows_seen = 0  # rows pyarrow handed over or rejected
        # Records pyarrow could not parse, in order: (record number, text, fields found).
        self.invalid: list[tuple[int, str, int]] = []
        self.consumed = 0  # how many of self.invalid have been reported
        self.records_done = 0  # every record up to this one (1-based, a header too) reported
        self.extra_lines = 0  # CSV: line breaks inside the records up to records_done
        self.delivered = 0  # valid rows handed on (a file read again skips them)
        self.reread_through = 0  # a file read again: its bad records up to this one are known
        self.too_long = False  # the parse stopped at a record longer than its block

    def _handler(self, row: pa_csv.InvalidRow) -> str:
        if row.number > self.reread_through:  # not met already before a re-read
            self.invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    def _records(self, first_valid: int, n: int) -> np.ndarray:
        """Record numbers of the valid rows ``first_valid .. first_valid + n - 1``."""
        invalid = np.asarray([r for r, _, _ in self.invalid], dtype=np.int64)
        gaps = invalid - self.first_record - np.arange(len(invalid))  # valid rows before each
        k = first_valid + np.arange(n, dtype=np.int64)
        return self.first_record + k + np.searchsorted(gaps, k, side="right")

    # ------------------------------------------------------------------ opening
    def _header(self, head: bytes) -> list[str]:
        line = head.replace(b"\r", b"\n").split(b"\n", 1)[0]
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise BadInputError(
                "invalid UTF-8 in the header", file=self.name, line=1, reason="invalid_utf8"
            ) from e
        names = next(csv.reader([text]), [])
        missing = [c for c in self.schema.column_names if c not in names]
        if missing:
            raise BadInputError(
                f"missing column(s) {missing}; the header has {show_names(names)}",
                file=self.name, line=1, reason="bad_file",
            )
        doubled = sorted({c for c in self.schema.column_names if names.count(c) > 1})
        if doubled:
            raise BadInputError(
                f"column(s) {doubled} appear more than once in the header",
                file=self.name, line=1, reason="bad_file",
            )
        return names

    def _reader(self, source: TextSource, skip_rows: int) -> pa_csv.CSVStreamingReader:
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

    def _open(self, widen: bool) -> TextSource:
        try:
            return TextSource(self.name, widen=widen)
        except OSError as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadInputError(f"cannot open: {message}", file=self.name,
                                reason="bad_file") from e

    def __iter__(self) -> Iterator[pa.Table]:
        with self._open(widen=False) as f:
            head = f.read(_SAMPLE_BYTES)
            whole = len(head) < _SAMPLE_BYTES and not f.read(1)
            damage = f.damage
        if not head:
            if damage is not None:
                self._cut_short(damage, line=1)
            else:
                self._empty()
            return
        if self.fmt == "csv":
            self.columns = self._header(head)
            skip_rows = 1
            if whole and damage is None and _header_only(head):
                # pyarrow's reader opened on a header alone fails ("Empty CSV file") and can
                # leave a thread behind that aborts the process at exit (1 run in 10)
                self._empty()
                return
        else:
            s = self.schema
            label = s.label if s.label is not None else self.unread_label
            self.columns = ([label] if label is not None else []) + [*s.dense, *s.categorical,
                                                                  *s.multi_valued_names]
            skip_rows = 0
        self.first_record = skip_rows + 1  # pyarrow numbers records from 1, a header too
        self.records_done = skip_rows
        bytes_per_row = len(head) / max(_newlines(head), 1)
        estimate = bytes_per_row * self.chunk_rows * 1.02
        big = int(min(max(estimate, _MIN_BLOCK), _MAX_BLOCK))
        for self.block_size in (_FAST_BLOCK, big) if _FAST_BLOCK < big else (big,):
            with self._open(widen=True) as source:
                failure = yield from self._parse(source, skip_rows)
                damage = source.damage
            if not (self.too_long and self.block_size < big):
                break
            # read again from the start with the big block, past what was handed on
            self.too_long = False
            self.reread_through = self.invalid[-1][0] if self.invalid else 0
        self._report_invalid(None)
        if failure is None and damage is not None:
            failure = damage
        if failure is not None:
            self._cut_short(failure, line=self.extra_lines + self.records_done + 1)
        if self.rows_seen == 0 and failure is None:
            self._empty()

    def _empty(self) -> None:
        error = BadInputError("empty file (no data rows)", file=self.name, reason="empty_file")
        report(error, None, self.on_bad_rows, self.rejects)

    def _cut_short(self, why: str, *, line: int) -> None:
        """The file cannot be read on from ``line``: the rest of it is one bad piece."""
        error = BadInputError(
            f"{why}; the rest of the file from here is unread ({line - 1} lines were read)",
            file=self.name, line=line, reason="bad_file",
        )
        report(error, None, self.on_bad_rows, self.rejects)

    def _parse(
        self, source: TextSource, skip_rows: int
    ) -> Generator[pa.Table, None, str | None]:
        """Yield the file's tables; return why the parser stopped early, if it did (and
        set :attr:`too_long` when a record longer than the block stopped it). A file read
        again skips the :attr:`delivered` rows it handed on before."""
        skip = self.delivered
        try:  # opening parses the first block
            reader = self._reader(source, skip_rows)
        except (pa.ArrowInvalid, OSError) as e:
            return None if "Empty CSV file" in str(e) else self._why(e)
        held: list[pa.RecordBatch] = []  # parsed blocks waiting to make up a chunk
        held_rows = 0
        # the thread stops (closing) before the reader it reads from closes
        with reader, closing(prefetch_batches(reader, depth=_PARSED_AHEAD)) as batches:
            for batch in batches:
                if isinstance(batch, BaseException):
                    if isinstance(batch, pa.ArrowInvalid | OSError):
                        yield from self._hand_on(held, held_rows)
                        return self._why(batch)
                    raise batch
                if skip:  # handed on before this file was read again
                    dropped = min(skip, batch.num_rows)
                    batch, skip = batch.slice(dropped), skip - dropped
                    if batch.num_rows == 0:
                        continue
                held.append(batch)
                held_rows += batch.num_rows
                while held_rows >= self.chunk_rows:  # a block may hold several chunks
                    yield from self._hand_on(held, self.chunk_rows)
                    held_rows -= self.chunk_rows
            yield from self._hand_on(held, held_rows)
        return None

    def _hand_on(self, held: list[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
        """Validate the first ``rows`` rows of the parsed blocks ``held`` as one batch and
        yield them, leaving the rest in ``held``. Checks run on whole chunks, not blocks:
        pyarrow's per-call cost over 40 columns is paid ~16 times less often (a chunk's
        checks take 0.25 s per 500k rows where the blocks' took 0.42)."""
        if rows == 0:
            return
        whole = held[0] if len(held) == 1 else pa.concat_batches(held)
        held[:] = [whole.slice(rows)] if whole.num_rows > rows else []
        batch = whole.slice(0, rows)
        table = self._batch(batch, self.delivered)
        self.delivered += batch.num_rows
        self.rows_seen += batch.num_rows
        if table.num_rows:
            yield table

    def _why(self, e: BaseException) -> str:
        """pyarrow's reason for stopping, on one line."""
        lines = str(e).strip().splitlines()
        text = lines[0] if lines else type(e).__name__
        if "straddling" in text:
            self.too_long = True
            return (f"a record longer than the reader's block ({self.block_size >> 20} MiB or "
                    "more; a quote left open, or not text?)")
        return f"cannot read on: {show_value(text)}"

    # ---------------------------------------------------------------- bad rows
    def _settle(self, events: list[_Bad]) -> None:
        """Report bad records in record order, each at its physical line (record number plus
        the line breaks inside earlier records)."""
        events.sort(key=lambda e: e.record)
        for e in events:
            error = BadInputError(e.detail, file=self.name, line=e.record + self.extra_lines,
                                  column=e.column, reason=e.reason)
            self.extra_lines += e.breaks
            report(error, e.raw, self.on_bad_rows, self.rejects)

    def _report_invalid(self, before: int | None) -> list[_Bad]:
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
            out.append(_Bad(record, _newlines(text), f"expected {expected} fields, got {found}",
                            "wrong_field_count", None, _raw(original(text))))
        if before is None:
            self._settle(out)
            if self.invalid:
                self.records_done = max(self.records_done, self.invalid[-1][0])
        return out

    def _batch(self, batch: pa.RecordBatch, delivered: int) -> pa.Table:
        n = batch.num_rows
        table, issues, fields = self._validate(batch)
        if n == 0:  # unparseable records wait for a batch (or the end) to order them
            return self._with_lines(table, np.zeros(0, dtype=np.int64))
        records = self._records(delivered, n)
        events = self._report_invalid(int(records[-1]))
        if issues is not None:
            for i, column, reason, detail in zip(
                issues.rows, issues.columns, issues.reasons, issues.details, strict=True
            ):
                values = [f[int(i)].as_py() or b"" for f in fields]
                breaks = sum(_newlines(v) for v in values) if self.fmt == "csv" else 0
                raw = "" if reason == "blank_row" else _raw(
                    self.delimiter.encode().join(values))
                events.append(_Bad(int(records[i]), breaks, detail, reason, column, raw))
        if self.positions is not None:
            table = self._with_lines(table, self._lines(records, events))
        self._settle(events)
        self.records_done = int(records[-1])
        if issues is not None:
            keep = np.ones(n, dtype=bool)
            keep[issues.rows] = False
            table = table.filter(pa.array(keep))
        return table

    def _lines(self, records: np.ndarray, events: list[_Bad]) -> np.ndarray:
        """Physical lines of records ``records``: the record number plus the line breaks inside
        the records before it (those reported already, and ``events`` not yet reported)."""
        before = np.asarray(sorted(e.record for e in events), dtype=np.int64)
        breaks = np.cumsum([0] + [e.breaks for e in sorted(events, key=lambda e: e.record)])
        return records + self.extra_lines + breaks[np.searchsorted(before, records)]

    def _with_lines(self, table: pa.Table, lines: np.ndarray) -> pa.Table:
        if self.positions is None:
            return table
        return table.append_column(self.positions, pa.array(lines, pa.int64()))

    def _validate(self, batch: pa.RecordBatch) -> tuple[pa.Table, RowIssues | None, list[pa.Array]]:
        """The batch typed and checked, with every field narrowed back to the file's bytes."""
        fields = [restore(f) for f in batch.columns]
        by_name = dict(zip(batch.schema.names, fields, strict=True))
        columns = {c: by_name[c] for c in self.schema.column_names}
        table, issues = validate_columns(
            columns, self.schema, num_rows=batch.num_rows, row_fields=fields,
            check_line_breaks=self.fmt == "csv", empties_are_null=True,  # null_values=[""]
        )
        return table, issues, fields


def _header_only(text: bytes) -> bool:
    """Whether ``text`` (a whole file) is one line, with or without its line break."""
    end = min((i for i in (text.find(b"\n"), text.find(b"\r")) if i >= 0), default=len(text))
    return text[end:] in (b"", b"\n", b"\r", b"\r\n")

