"""Parsing ahead: a streaming CSV reader's batches parsed by a background thread while the
caller validates and encodes the ones before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator

import pyarrow as pa
import pyarrow.csv as pa_csv


def prefetch_batches(
    reader: pa_csv.CSVStreamingReader, depth: int = 2
) -> Generator[pa.RecordBatch | Exception, None, None]:
    """Batches parsed by a background thread while the caller validates and encodes.

    pyarrow parses with the GIL released, so on two cores parsing overlaps the rest. The
    reader stays serial (one thread, blocks in order), which keeps its row numbers exact; an
    error (a parse error, a failed read, anything the reader raises) arrives in order as the
    exception object and ends the batches, so a failure is never lost with the thread.
    Closing the generator early stops the thread after at most one more batch.

    Example:
        >>> reader = pa_csv.open_csv(pa.BufferReader(b"a,b\\n1,x\\n2,y\\n"))
        >>> [b.num_rows for b in prefetch_batches(reader)]
        [2]
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as e:  # handed to the caller, who decides
                    put(e)
                    return
                put(batch)
        finally:
            put(done)

    thread = threading.Thread(target=work, name="crossrank-csv-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                break
            assert isinstance(item, pa.RecordBatch | Exception)
            yield item
            if isinstance(item, Exception):
                break
    finally:
        stop.set()
        thread.join()
