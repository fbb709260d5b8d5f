"""pyarrow's memory pool for crossrank's commands: jemalloc, where this pyarrow has it.

pyarrow's default pool (mimalloc in the Linux wheels) hands freed pages back to the system and
faults them in again, zeroed, for the next chunk; jemalloc keeps them for reuse. Reading,
validating and encoding 500,000 Criteo-shaped TSV rows in a fresh process took 25% less CPU
with jemalloc (1.39-1.45 against 1.79-1.96 s, 2 cores; BENCHMARKS.md, "Encoding: fewer fresh
pages, sorted look-ups, jemalloc for the command"), at the same peak memory. The choice is
process-wide, so the library leaves it to the program: the ``crossrank`` command makes it
when it starts, and a user's own program may call :func:`prefer_jemalloc`
(or set ``ARROW_DEFAULT_MEMORY_POOL``, which always wins).
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

__all__ = ["prefer_jemalloc"]

# pyarrow reads this variable for its default pool; a user who sets it has chosen
USER_CHOICE = "ARROW_DEFAULT_MEMORY_POOL"


def prefer_jemalloc() -> str:
    """Make jemalloc pyarrow's default memory pool, unless ``ARROW_DEFAULT_MEMORY_POOL`` is
    set or this pyarrow was built without it; returns the pool's backend name then in use.

    Example:
        >>> prefer_jemalloc() in ("jemalloc", "mimalloc", "system")
        True
    """
    if not os.environ.get(USER_CHOICE):
        # a build without jemalloc (e.g. the Windows wheels) keeps its default
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return str(pa.default_memory_pool().backend_name)
