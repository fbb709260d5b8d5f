"""A stream of tables encoded on a few threads, in order: what ``evaluate``, ``predict``,
``explain`` and the cache's writer read.

The reader parses in a background thread and validates in the calling thread; the encoder
(dictionary encoding, vocabulary look-ups, list splitting: pyarrow and numpy with the GIL
released) runs on ``workers`` threads, a few chunks ahead, so the two cores share the
three stages instead of taking them in turn. How many threads, unless given: two where the
other processes leave about two cores free, else one
(:func:`~crossrank.spare_cores.encoding_workers`), decided when a second chunk arrives.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pyarrow as pa

from crossrank.data.encoded_batch import EncodedBatch
from crossrank.data.encoders import FeatureEncoder
from crossrank.data.ordered_map import map_in_order
from crossrank.spare_cores import encoding_workers

# chunks handed to the encoding threads and not yet taken back: the calling thread reads
# and validates on while both threads encode (3 measured slower than 4 on 2 cores)
_AHEAD = 4


def encode_stream(tables: Iterable[pa.Table], encoder: FeatureEncoder, *,
                  workers: int | None = None,
                  pad_lists: bool = True) -> Iterator[tuple[pa.Table, EncodedBatch]]:
    """Each table of ``tables`` with its encoding (``encoder.transform``), in order.

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

    source = iter(tables)
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
