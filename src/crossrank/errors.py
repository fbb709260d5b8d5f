"""The errors a user can cause, raised anywhere in crossrank: a leaf module every room imports.

:class:`CrossrankError` marks an error caused by the user's input (a bad row, a bad option, a
damaged model file), not by a bug: the command line prints these as one line and exits 2, and
lets every other exception (a ``TypeError`` or ``KeyError`` from a bug) surface as a traceback.
Each subclass is also a ``ValueError``, so callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = ["REASONS", "BadInputError", "ConfigError", "CrossrankError", "DivergedError",
           "ModelFileError", "RunDirError"]


class CrossrankError(Exception):
    """Base of the errors a user's input causes (never a bug in crossrank)."""


class ConfigError(CrossrankError, ValueError):
    """A bad option: an unknown key, a value of the wrong type or outside its range.

    Example:
        >>> str(ConfigError("unknown option 'training.lrr'; did you mean 'training.lr'?"))
        "unknown option 'training.lrr'; did you mean 'training.lr'?"
    """


class ModelFileError(CrossrankError, ValueError):
    """A model directory or file that is missing, damaged or not crossrank's."""


class RunDirError(CrossrankError, ValueError):
    """A run's output directory that cannot be used as asked: another training is writing into
    it, it holds a model a fresh run would replace, or the run to resume is not there or was
    started with other options."""


class DivergedError(CrossrankError, ValueError):
    """Training diverged: a loss or gradient that is NaN or infinite (the update it would have
    made is never applied), weights that are no longer finite, or no epoch with a finite
    validation metric. The options chose it (a learning rate too high, no clipping), so it is
    a user's error: one line naming the epoch and update, exit status 2."""


REASONS: dict[str, str] = {
    "wrong_field_count": "wrong number of fields",
    "blank_row": "every field empty (blank line)",
    "line_break_in_field": "a field holds a line break (unterminated or multi-line quote)",
    "missing_label": "missing label",
    "bad_label": "label outside the task's range",
    "non_numeric": "non-numeric value in a numeric column",
    "non_finite": "NaN or infinite value in a numeric column",
    "invalid_utf8": "invalid UTF-8",
    "missing_id": "missing id",
    "list_too_long": "a multi-valued value over the length limit",
    "missing_weight": "missing weight",
    "bad_weight": "weight negative or not finite",
    "missing_group": "missing group (--group-by) value",
    "empty_file": "empty file (no data rows)",
    "bad_file": "unreadable or damaged file (the rest of it unread), or missing columns",
}


def _where(file: str, line: int | None, row: int | None, column: str | None) -> str:
    place = file
    if line is not None:
        place += f" line {line}"
    elif row is not None:
        place += f" row {row}"
    if column is not None:
        place += f", column {column}"
    return place


class BadInputError(CrossrankError, ValueError):
    """A row or file that breaks the schema; the message is one line naming where.

    Attributes:
        file, line (1-based, text formats), row (0-based, Parquet), column, reason (a key of
        :data:`REASONS`), detail (the message without the place).

    Example:
        >>> e = BadInputError("non-numeric dense value 'abc'", file="criteo.tsv", line=17,
        ...                   column="I3", reason="non_numeric")
        >>> str(e)
        "criteo.tsv line 17, column I3: non-numeric dense value 'abc'"
        >>> isinstance(e, ValueError)
        True
    """

    def __init__(
        self,
        detail: str,
        *,
        file: str,
        reason: str,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {sorted(REASONS)}, got {reason!r}")
        self.file, self.line, self.row, self.column = file, line, row, column
        self.reason, self.detail = reason, detail
        super().__init__(f"{_where(file, line, row, column)}: {detail}")


