"""A function applied to a stream's items by a few threads, the results handed on in the
stream's order: encoding chunk k+1 on one core while chunk k is written and chunk k+2 is
parsed on the other.

Worth it where ``fn`` spends its time with the GIL released (pyarrow compute, numpy's
indexing and arithmetic): :meth:`~crossrank.data.encoders.FeatureEncoder.transform` does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_order(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2,
                 ahead: int | None = None) -> Iterator[R]:
    """``fn(item)`` for every item of ``items``, in order, computed by ``workers`` threads
    with at most ``ahead`` items (default ``workers + 1``) taken but not yet handed on.

    Items are taken from ``items`` in the calling thread (a generator that validates as it
    reads keeps doing so where it did). Errors keep the stream's order: an error of
    ``fn(item k)`` is raised where result k would have been, and an error raised by
    ``items`` itself only once every result before it has been handed on (or the first of
    their errors raised). Closing the iterator early cancels what has not started and waits
    for what has. ``workers`` <= 1 is the plain ``map``, no thread.

    Example:
        >>> list(map_in_order(lambda x: x * x, range(6), workers=2))
        [0, 1, 4, 9, 16, 25]
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    depth = ahead if ahead is not None else workers + 1
    if depth < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    pending: deque[Future[R]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="crossrank-map") as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < depth:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    except BaseException:
                        # the items before this failure come first (their results, or the
                        # first of their own errors), then the stream's error
                        while pending:
                            yield pending.popleft().result()
                        raise
                    pending.append(pool.submit(fn, item))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
