"""Agreeing on a failure: a step either succeeds on every rank or raises on every rank, with
the first failing rank's error (no rank is left waiting at a barrier for one that stopped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from crossrank.distributed.collectives import all_gather_bytes
from crossrank.distributed.context import current_context
from crossrank.errors import BadInputError, ConfigError, DivergedError, ModelFileError, RunDirError

T = TypeVar("T")


def agree(error: BaseException | None) -> None:
    """A barrier at which the ranks learn whether any failed: then every rank raises the first
    failure in rank order (the failing rank its own exception, the others one of the same type
    and message, or a ``RuntimeError`` naming the rank for types other than the usual ones).

    Without a process group: raises ``error`` if there is one.

    Example:
        >>> agree(None)
    """
    world = current_context()
    if not world.is_distributed:
        if error is not None:
            raise error
        return
    reports = all_gather_bytes(b"" if error is None else json.dumps(_describe(error)).encode())
    for rank, raw in enumerate(reports):
        if raw:
            if rank == world.rank and error is not None:
                raise error
            raise _rebuild(json.loads(raw), rank) from error


# the user errors travel between ranks as themselves, so every rank prints the one line
_TYPES: dict[str, type[Exception]] = {
    t.__name__: t for t in (ValueError, TypeError, FileNotFoundError, PermissionError, OSError,
                            ConfigError, DivergedError, ModelFileError, RunDirError)
}


def _describe(error: BaseException) -> dict[str, Any]:
    d: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, BadInputError):
        d["bad_input"] = {"detail": error.detail, "file": error.file, "reason": error.reason,
                          "line": error.line, "row": error.row, "column": error.column}
    return d


def _rebuild(d: dict[str, Any], rank: int) -> Exception:
    if "bad_input" in d:
        b = d["bad_input"]
        return BadInputError(b.pop("detail"), **b)
    if d["type"] in _TYPES:
        return _TYPES[d["type"]](d["message"])
    return RuntimeError(f"rank {rank} failed: {d['type']}: {d['message']}")


def run_agreed(fn: Callable[[], T]) -> T:
    """``fn()`` on this rank, then :func:`agree` on whether every rank's call succeeded: a
    step that either succeeds on every rank or raises on every rank.

    Example:
        >>> run_agreed(lambda: 3)
        3
    """
    try:
        result = fn()
    except Exception as error:  # every failure stops every rank: none waits for the others
        agree(error)
        raise  # not reached: agree raises
    agree(None)
    return result
