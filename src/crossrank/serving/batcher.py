"""Micro-batching: the rows of concurrent requests scored in one model call.

Requests queue their rows (typed feature columns); one task takes the first waiting request,
then every other one that arrives within ``max_wait_ms`` while the batch stays within
``max_batch_rows`` (a request bigger than that goes alone). It waits only while other requests
are on their way (being read and parsed, :meth:`Batcher.arriving`): a lone request is scored at
once instead of paying the wait for company that is not coming. Then it hands the batch to
one worker thread, which checks every value once for the whole batch, encodes, runs the model and cuts
the scores back into each request's own rows, in order. A batch of at most ``INLINE_ROWS`` rows
is scored on the event loop's own thread instead: it takes well under a millisecond, less
than the two thread hand-offs (and the GIL waits they bring) would add to its latency
(1-row requests at concurrency 1: p50 2.3 -> 1.6 ms, p99 4.6 -> 3.2 ms, BENCHMARKS.md).
A request with a bad value gets its first problem (its own row index and column); the other
requests of the batch are scored as if it had not been there. Requests arriving while the
model runs wait for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.serving.metrics import Metrics
from crossrank.serving.rows import BadRowsError, typed_columns
from crossrank.serving.scorer import Scorer

__all__ = ["INLINE_ROWS", "Batcher"]

INLINE_ROWS = 16  # a batch this small is scored on the event loop's thread (module doc)


@dataclass
class _Job:
    columns: dict[str, pa.Array]
    rows: int
    future: asyncio.Future[np.ndarray] = field(repr=False)


class Batcher:
    """Scores the rows of concurrent requests together (see the module doc)."""

    def __init__(self, scorer: Scorer, *, max_batch_rows: int, max_wait_ms: float,
                 metrics: Metrics) -> None:
        self.scorer, self.metrics = scorer, metrics
        self.max_batch_rows, self.max_wait = max_batch_rows, max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._carried: _Job | None = None  # the request that did not fit the last batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="crossrank-model")
        self._task: asyncio.Task[None] | None = None
        self._arriving = 0  # requests being read and parsed, not yet queued

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Wrap the reading and parsing of a request that will be scored: while any is in
        here, a batch waits (up to ``max_wait_ms``) for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # how a cancelled task ends
                await self._task
        self._executor.shutdown(wait=True)

    async def score(self, columns: dict[str, pa.Array], rows: int) -> np.ndarray:
        """Scores of one request's rows, in order; raises its first :class:`BadRowsError`."""
        job = _Job(columns, rows, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _next_batch(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        first = self._carried if self._carried is not None else await self._queue.get()
        self._carried = None
        jobs, rows = [first], first.rows
        deadline = loop.time() + self.max_wait
        while rows < self.max_batch_rows:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0 or not self._arriving:  # nothing more is on its way
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if rows + job.rows > self.max_batch_rows:
                self._carried = job
                break
            jobs.append(job)
            rows += job.rows
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._next_batch()
            try:
                if sum(job.rows for job in jobs) <= INLINE_ROWS:
                    results = self._score(jobs)
                else:
                    results = await loop.run_in_executor(self._executor, self._score, jobs)
            except Exception as err:  # a bug: every request of the batch learns of it
                results = [err] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _score(self, jobs: list[_Job]) -> list[np.ndarray | Exception]:
        """In the worker thread: one check, one encoding and one model call for the batch."""
        names = list(jobs[0].columns)
        columns = {n: pa.concat_arrays([job.columns[n] for job in jobs]) for n in names}
        starts = np.cumsum([0] + [job.rows for job in jobs])  # (J+1,) each job's first row
        table, problems = typed_columns(columns, self.scorer.schema, int(starts[-1]))
        results: list[np.ndarray | Exception] = [np.zeros(0)] * len(jobs)
        good = np.ones(len(jobs), dtype=bool)
        if problems is not None:
            owners = np.searchsorted(starts, problems.rows, side="right") - 1
            for owner, error in zip(owners[::-1], problems.errors[::-1], strict=True):
                good[owner] = False  # walking backwards leaves each job its first problem
                results[owner] = BadRowsError(error.kind, error.detail, column=error.column,
                                              row=int(error.row or 0) - int(starts[owner]))
        if good.any():
            keep = np.repeat(good, np.diff(starts))
            scored = table if good.all() else table.filter(pc.cast(pa.array(keep), pa.bool_()))
            scores = self.scorer.score_typed(scored)
            self.metrics.batch(len(scores))
            at = 0
            for j in np.flatnonzero(good):
                results[j] = scores[at:at + jobs[j].rows]
                at += jobs[j].rows
        return results
