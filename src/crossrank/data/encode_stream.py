"""A stream of tables encoded on a few threads, in order: what ``evaluate``, ``predict``,
``explain`` and the cache's writer read.

The reader parses in a background thread and validates in the calling thread; the encoder
(dictionary encoding, vocabulary look-ups, list splitting: pyarrow and numpy with the GIL
released) runs on ``workers`` threads, a few chunks ahead, so the two cores share the
three stages instead of taking them in turn. How many threads, unless given: two where the
other processes leave about two cores free, else one
(:func:`~crossrank.spare_cores.encoding_workers`), decided when a second chunk arrives.
Chunks whose encoded ids would be large are cut into slices first (``_MAX_IDS_BYTES``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pyarrow as pa

from crossrank.data.encoded_batch import EncodedBatch
from crossrank.data.encoders import FeatureEncoder
from crossrank.data.ordered_map import map_in_order
from crossrank.spare_cores import encoding_workers

# An encoded batch's id matrix is kept under this size. glibc hands an array over 32 MB fresh
# pages from the kernel on every allocation (zeroed on first touch: 20% of the stream's CPU),
# while smaller ones reuse the memory freed by the batches before: with a 50-wide
# multi-valued field, 65,536 rows' ids are 40 MB.
_MAX_IDS_BYTES = 16 << 20
_MIN_ROWS = 4096

# chunks handed to the encoding threads and not yet taken back: the calling thread reads
# and validates on while both threads encode (3 measured slower than 4 on 2 cores)
_AHEAD = 4


def encode_stream(tables: Iterable[pa.Table], encoder: FeatureEncoder, *,
                  workers: int | None = None,
                  pad_lists: bool = True) -> Iterator[tuple[pa.Table, EncodedBatch]]:
    """Each table of ``tables`` with its encoding (``encoder.transform``), in order; a table
    whose id matrix (categorical and padded multi-valued ids) would pass 16 MB comes as
    consecutive slices (e.g. 27,594 rows with a 50-wide multi-valued field among 26 fields).

    Args:
        tables: chunks, e.g. from :func:`~crossrank.data.readers.iter_tables`; they are taken
            in the calling thread, so a reader's validation and rejects stay there.
        encoder: a fitted :class:`~crossrank.data.encoders.FeatureEncoder`.
        workers: encoding threads; 1 encodes in the calling thread; None (the default): 2 or
            1 by how busy the machine is, sampled once the stream has a second chunk (one
            chunk is encoded in the calling thread).
        pad_lists: passed to ``transform`` (False: multi-valued ids jagged only).

    Errors keep the stream's order (see :func:`~crossrank.data.ordered_map.map_in_order`).

    Example:
        >>> from crossrank.data import TableSchema
        >>> s = TableSchema(label="y", dense=(), categorical=("c",))
        >>> t = pa.table({"y": [1.0, 0.0], "c": ["a", "b"]})
        >>> enc = FeatureEncoder(s).fit([t])
        >>> [b.sparse[:, 0].tolist() for _, b in encode_stream([t, t.slice(1)], enc)]
        [[2, 3], [3]]
    """
    def encode(table: pa.Table) -> tuple[pa.Table, EncodedBatch]:
        return table, encoder.transform(table, pad_lists=pad_lists)

    width = len(encoder.schema.categorical) + (sum(encoder.lists.widths) if pad_lists else 0)
    source = _sliced(tables, max(_MIN_ROWS, _MAX_IDS_BYTES // (8 * max(width, 1))))
    if workers is None:
        first = next(source, None)
        if first is None:
            return
        try:
            second = next(source, None)
        except BaseException:
            yield encode(first)  # the reader's error comes after the rows before it
            raise
        if second is None:
            yield encode(first)
            return
        workers = encoding_workers()
        source = itertools.chain((first, second), source)
    yield from map_in_order(encode, source, workers=workers, ahead=max(_AHEAD, workers + 1))


def _sliced(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """``tables``, each cut into slices of at most ``rows`` rows (zero-copy)."""
    for table in tables:
        if table.num_rows <= rows:
            yield table
            continue
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows)
