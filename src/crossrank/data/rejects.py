"""Bad input rows: the error raised for them and the log that keeps them when they are skipped.

Readers never drop or coerce a bad row silently. With ``on_bad_rows="error"`` they raise
:class:`BadInputError`, whose one-line message names the file, the place and the column::

    criteo.tsv line 17, column I3: non-numeric dense value 'abc'

Text formats give the 1-based physical line (the header of a CSV is line 1); Parquet gives the
0-based row index. With ``on_bad_rows="skip"`` every bad row goes to a :class:`RejectsLog`,
which counts them by reason and, given a path, writes one JSON object per line (JSONL)::

    {"file": "criteo.tsv", "line": 17, "row": null, "column": "I3",
     "reason": "non_numeric", "message": "non-numeric dense value 'abc'", "raw": "0\\t1\\tabc..."}

``raw`` is the row's text where the reader has it (fields re-joined with the delimiter for rows
the parser accepted, the line itself for rows with the wrong number of fields; invalid UTF-8 is
shown with backslash escapes), ``null`` for Parquet and for whole-file problems.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from crossrank.errors import REASONS, BadInputError

__all__ = ["REASONS", "BadInputError", "RejectsLog", "concatenate_rejects", "report", "summarize"]

# Characters that str.splitlines() (and other readers) take for line breaks but JSON leaves
# unescaped: escaped, so each record stays on one line however the log is split.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _one_line(text: str) -> str:
    for char, escaped in _LINE_BREAKS.items():
        text = text.replace(char, escaped)
    return text


class RejectsLog:
    """Counts skipped rows by reason and, given ``path``, writes each one as a JSON line.

    Args:
        path: JSONL file to write (created or truncated), or ``None`` to count only.

    Example:
        >>> log = RejectsLog()
        >>> log.add(BadInputError("missing label", file="a.tsv", line=3, column="label",
        ...                       reason="missing_label"), raw="\\t1\\t2")
        >>> log.total, log.counts
        (1, {'missing_label': 1})
        >>> log.summary()
        '1 missing label'
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is not None and not isinstance(path, str | Path):
            raise TypeError(f"path must be a str, a Path or None, got {type(path).__name__}")
        self.path = None if path is None else Path(path)
        self._counts: dict[str, int] = {}
        self._file: IO[str] | None = None
        if self.path is not None:
            self._file = self.path.open("w", encoding="utf-8")

    @property
    def counts(self) -> dict[str, int]:
        """Rows skipped so far, by reason (keys of :data:`REASONS`)."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """Rows skipped so far."""
        return sum(self._counts.values())

    def add(self, error: BadInputError, *, raw: str | None = None) -> None:
        """Record one skipped row (or one empty file)."""
        if not isinstance(error, BadInputError):
            raise TypeError(f"error must be a BadInputError, got {type(error).__name__}")
        self._counts[error.reason] = self._counts.get(error.reason, 0) + 1
        if self._file is not None:
            record = {
                "file": error.file,
                "line": error.line,
                "row": error.row,
                "column": error.column,
                "reason": error.reason,
                "message": error.detail,
                "raw": raw,
            }
            self._file.write(_one_line(json.dumps(record, ensure_ascii=False)) + "\n")

    def summary(self) -> str:
        """Counts by reason on one line, e.g. ``2 missing label, 1 wrong number of fields``."""
        return summarize(self._counts)

    def close(self) -> None:
        """Flush and close the file; counts stay readable."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RejectsLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def report(
    error: BadInputError, raw: str | None, on_bad_rows: str, rejects: RejectsLog | None
) -> None:
    """Raise ``error`` (``on_bad_rows="error"``) or log it in ``rejects`` and go on."""
    if on_bad_rows == "error" or rejects is None:
        raise error
    rejects.add(error, raw=raw)


def summarize(counts: Mapping[str, int]) -> str:
    """Counts by reason (keys of :data:`REASONS`) on one line; zero counts are left out.

    Example:
        >>> summarize({"missing_label": 2, "wrong_field_count": 1, "blank_row": 0})
        '2 missing label, 1 wrong number of fields'
    """
    unknown = sorted(set(counts) - set(REASONS))
    if unknown:
        raise ValueError(f"counts must be keyed by reasons {sorted(REASONS)}, got {unknown}")
    shown = sorted((r, n) for r, n in counts.items() if n)
    return ", ".join(f"{n} {REASONS[r]}" for r, n in shown) if shown else "no bad rows"


def concatenate_rejects(parts: Sequence[str | Path], path: str | Path) -> None:
    """Write the JSONL files ``parts`` one after another into ``path`` (created or truncated).

    Rejects logs of consecutive pieces of the data (each data-parallel rank's files), joined
    in that order, are the log one reader of all the data writes. The bytes are copied as they
    are, a piece at a time.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "a.jsonl").write_text('{"line": 3}\\n'); _ = (d / "b.jsonl").write_text("")
        >>> _ = (d / "c.jsonl").write_text('{"line": 9}\\n')
        >>> concatenate_rejects([d / "a.jsonl", d / "b.jsonl", d / "c.jsonl"], d / "all.jsonl")
        >>> (d / "all.jsonl").read_text().splitlines()
        ['{"line": 3}', '{"line": 9}']
    """
    if isinstance(parts, str | Path):
        raise TypeError(f"parts must be a sequence of paths, got {parts!r}")
    with Path(path).open("wb") as sink:
        for part in parts:
            with Path(part).open("rb") as source:
                shutil.copyfileobj(source, sink, 1 << 20)
