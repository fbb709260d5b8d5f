"""A function run in a thread of its own, its result (or error) in a future: the trainer
writes the best model while it checkpoints the optimizer state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


def in_background(fn: Callable[..., str], *args: Any, **kwargs: Any) -> Future[str]:
    """``fn(*args, **kwargs)`` run in a new thread; its result (or error) in the future.
    Writing files mostly releases the GIL (the copy into the page cache, fsync, SHA-256), so
    two files are written at once on two cores.

    Example:
        >>> in_background(lambda x: x * 2, "ab").result()
        'abab'
    """
    future: Future[str] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to whoever waits on the future
            future.set_exception(err)

    threading.Thread(target=run, name="crossrank-save").start()
    return future
