"""How many encoding threads this machine has room for: two where other processes leave
about two cores free, else one.

On 2 cores with one other CPU-bound process, two encoding threads beside the parsing thread
and the calling thread made encoding slower, not faster (500k rows with a multi-valued
column, in one process, alternating: to the cache 189,000 rows/s with two threads against
259,000 with one; the stream 231,000 against 289,000); on the idle machine they were 1.1-1.5x
faster. So the choice looks at what the other processes use, sampled from ``/proc/stat``
over a tenth of a second with this process's own CPU time taken out.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

# the other processes' use, in cores, above which a second encoding thread stops paying
_FREE_CORES_FOR_TWO = 1.5
_SAMPLE_SECONDS = 0.1


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class _Sample(NamedTuple):
    busy: float  # seconds of CPU used by everything, over all cores (from /proc/stat)
    own: float  # seconds of CPU used by this process (all its threads)
    at: float  # wall clock


def _sample() -> _Sample | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:  # not Linux
        return None
    if len(fields) < 8 or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    t = os.times()
    return _Sample((user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"),
                   t.user + t.system, time.monotonic())


def others_busy(seconds: float = _SAMPLE_SECONDS) -> float | None:
    """Cores' worth of CPU the other processes used over the next ``seconds`` (this process's
    own threads, a parser running ahead say, taken out); None where it cannot be read.

    Example:
        >>> busy = others_busy(0.05)
        >>> busy is None or busy >= 0.0
        True
    """
    first = _sample()
    if first is None:
        return None
    time.sleep(seconds)
    last = _sample()
    if last is None or last.at <= first.at:
        return None
    return max(0.0, (last.busy - first.busy) - (last.own - first.own)) / (last.at - first.at)


def encoding_workers(cores: int | None = None, busy: float | None = None) -> int:
    """2 encoding threads where about two cores are free of other processes, else 1.

    Args:
        cores: the CPUs this process may use (default: :func:`available_cores`).
        busy: the other processes' use in cores (default: :func:`others_busy`, which takes a
            tenth of a second; where it cannot be read, the machine counts as free).

    Example:
        >>> encoding_workers(cores=2, busy=0.1), encoding_workers(cores=2, busy=1.0)
        (2, 1)
        >>> encoding_workers(cores=1, busy=0.0)
        1
    """
    cores = available_cores() if cores is None else cores
    if cores < 2:
        return 1
    if busy is None:
        busy = others_busy()
    return 2 if busy is None or cores - busy >= _FREE_CORES_FOR_TWO else 1
