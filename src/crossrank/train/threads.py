"""How many CPU threads a training step uses when the user did not say: measured, not guessed.

PyTorch runs each operator's parallel region on all of its intra-op threads and waits at the
region's end for the slowest. On an idle machine two threads on two cores are ~1.6x one
thread; with one other CPU-bound process on a 2-core machine, one of the two threads is often
descheduled, every region waits a scheduler time slice for it, and the step becomes 10-30x
slower than on one thread (``crossrank train`` measured 758 samples/s on 2 threads against
20,735 on 1; issue #18). No setting is right for both, and the load changes while a run
trains, so :class:`ThreadGovernor` measures:

1. **probe**: each candidate thread count (all cores, half of them, one; the count held until
   now first) runs for at least ``probe_seconds`` of steps (at least one step; at most
   ``probe_steps``), and its time per sample is the median over those steps; a candidate
   whose step is already ``1.5x`` slower than the fastest one measured in this round stops
   there (one slow step is what a losing count costs a round, not ``probe_seconds`` of them);
2. **hold**: the fastest candidate runs for ``hold_seconds``; if its time per sample rises
   above ``1.5x`` what its probe measured over three steps in a row (the machine got busier,
   or quieter for the others), the next probe starts at once;
3. a candidate measured at less than half the best one's speed is skipped by the next 1, 2,
   4, ... (at most 16) probe rounds, so a collapsing thread count costs one step now and then,
   not one per round.

The thread count does not change results: every model family and cross variant's update is
bit-identical on 1 and 2 threads (tested in ``tests/train/test_threads.py``: torch's CPU
kernels on these models split rows and columns between threads, never a sum; not checked on
more threads), so a run's weights do not depend on the machine's load. Batch and layer norm
are the exception (their statistics are sums split between threads), and so are bfloat16
products: a model with norms, or trained in bf16, keeps torch's default count
(:func:`governor_for`).

Example:
    >>> clock = iter(range(1000))
    >>> chosen = []
    >>> g = ThreadGovernor((2, 1), set_threads=chosen.append, clock=lambda: next(clock),
    ...                    probe_seconds=2, hold_seconds=100)
    >>> for _ in range(8):
    ...     g.begin()
    ...     g.end(rows=10)
    >>> chosen[:3]  # probed 2 threads, then 1, then holds the first (ties keep the first)
    [2, 1, 2]
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from crossrank.spare_cores import available_cores

_SLOWER = 1.5  # the held count's time per sample above this x its probe: probe again
_SLOWER_STEPS = 3  # ... for this many steps in a row
_FAR_SLOWER = 2.0  # a probe this many x slower than the best: skip it in later rounds
_MAX_SKIP = 16


@functools.cache
def torch_default_threads() -> int:
    """torch's intra-op thread count as the process started (OMP_NUM_THREADS, else the
    physical cores), read once: the governor changes it later."""
    return torch.get_num_threads()


_NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)


def governor_for(threads: int | None, device: str, model: torch.nn.Module, *,
                 precision: str = "float32") -> ThreadGovernor | None:
    """The governor of a training run whose ``threads`` option is None (else the user's count
    holds, and None is returned), on the CPU with more than one core to choose from, for a
    model without normalization layers: their mean and variance are reductions that torch
    splits between threads, so with them the thread count changes the last bits of every
    update, and a run's weights would depend on the machine's load (torch's default count
    then holds; ``--threads 1`` is the remedy on a busy machine). The same holds for bfloat16
    products (``precision="bf16"``), whose kernels split some sums between threads too (the
    mixture cross network's, measured)."""
    if threads is not None or torch.device(device).type != "cpu" or precision != "float32":
        return None
    if any(isinstance(m, _NORMS) for m in model.modules()):
        return None
    choices = candidate_threads(min(torch_default_threads(), available_cores()))
    if len(choices) == 1:
        return None
    return ThreadGovernor(choices, set_threads=torch.set_num_threads, clock=time.perf_counter)


def candidate_threads(cores: int) -> tuple[int, ...]:
    """The thread counts tried: all cores, half of them, one (distinct, largest first).

    Example:
        >>> candidate_threads(2), candidate_threads(16), candidate_threads(1)
        ((2, 1), (16, 8, 1), (1,))
    """
    return tuple(sorted({cores, max(1, cores // 2), 1}, reverse=True))


class ThreadGovernor:
    """Chooses the intra-op thread count step by step (the module doc's rule).

    Call :meth:`begin` before a step and :meth:`end` with its rows after it.

    Args:
        choices: thread counts to choose from (the first is probed first and wins ties).
        set_threads: applies a count (``torch.set_num_threads``).
        clock: seconds, monotonic (``time.perf_counter``).
        probe_seconds, probe_steps: how long each candidate is measured.
        hold_seconds: how long the winner runs before the candidates are measured again.

    Attributes:
        current: the thread count in use.
        history: ``(count, seconds per sample)`` of every finished probe, for logs and tests.
    """

    def __init__(self, choices: Sequence[int], *, set_threads: Callable[[int], object],
                 clock: Callable[[], float], probe_seconds: float = 0.5, probe_steps: int = 20,
                 hold_seconds: float = 30.0) -> None:
        if not choices or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                              for c in choices):
            raise ValueError(f"choices must be positive thread counts, got {choices!r}")
        self.choices = tuple(dict.fromkeys(choices))
        self.set_threads, self.clock = set_threads, clock
        self.probe_seconds, self.probe_steps = probe_seconds, probe_steps
        self.hold_seconds = hold_seconds
        self.history: list[tuple[int, float]] = []
        self._skip = dict.fromkeys(self.choices, 0)  # probe rounds each candidate sits out
        self._backoff = dict.fromkeys(self.choices, 0)
        self._queue: list[int] = []  # candidates still to probe this round
        self._round: dict[int, float] = {}  # this round's measurements
        self._samples: list[float] = []  # seconds per sample of the steps in this phase
        self._phase_started = 0.0
        self._held_rate = 0.0
        self._slow_steps = 0
        self._started: float | None = None
        self.current = self.choices[0]
        self._start_round()

    # ------------------------------------------------------------------ the steps
    def begin(self) -> None:
        self._started = self.clock()

    def end(self, rows: int) -> None:
        if self._started is None:
            raise RuntimeError("end() without begin()")
        now = self.clock()
        seconds, self._started = now - self._started, None
        if rows <= 0 or len(self.choices) == 1:
            return
        per_sample = seconds / rows
        self._samples.append(per_sample)
        if self._queue:  # probing self.current
            losing = bool(self._round) and per_sample > _SLOWER * min(self._round.values())
            if (losing or now - self._phase_started >= self.probe_seconds
                    or len(self._samples) >= self.probe_steps):
                self._round[self.current] = statistics.median(self._samples)
                self.history.append((self.current, self._round[self.current]))
                self._queue.pop(0)
                self._next_probe_or_hold(now)
            return
        # holding: probe again when the time is up or the held count slowed down
        self._slow_steps = self._slow_steps + 1 if per_sample > _SLOWER * self._held_rate else 0
        if now - self._phase_started >= self.hold_seconds or self._slow_steps >= _SLOWER_STEPS:
            self._start_round(now)

    # ------------------------------------------------------------------ phases
    def _start_round(self, now: float | None = None) -> None:
        # the count held until now first: it is the likeliest winner, and the others' probes
        # can stop at their first step when they lose to it
        self._queue = sorted((c for c in self.choices if self._skip[c] == 0),
                             key=lambda c: c != self.current)
        for c in self.choices:
            self._skip[c] = max(0, self._skip[c] - 1)
        self._round = {}
        self._switch(self._queue[0], now)

    def _next_probe_or_hold(self, now: float) -> None:
        if self._queue:
            self._switch(self._queue[0], now)
            return
        best = min(self._round, key=lambda c: (self._round[c], self.choices.index(c)))
        for c, rate in self._round.items():
            if rate > _FAR_SLOWER * self._round[best]:
                self._backoff[c] = min(_MAX_SKIP, max(1, 2 * self._backoff[c]))
                self._skip[c] = self._backoff[c]
            else:
                self._backoff[c] = 0
        self._held_rate = self._round[best]
        self._slow_steps = 0
        self._switch(best, now)

    def _switch(self, threads: int, now: float | None) -> None:
        self.current = threads
        self.set_threads(threads)
        self._samples = []
        self._phase_started = self.clock() if now is None else now
