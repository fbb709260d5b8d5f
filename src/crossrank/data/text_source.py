"""A text file's bytes as the CSV parser reads them: decompressed, cut cleanly at damage, and
with every byte value passed through pyarrow's parser intact.

pyarrow hands a row with the wrong number of fields to its invalid-row handler as ``str``; a
row that is also invalid UTF-8 cannot be decoded, which prints an ``Exception ignored``
traceback and stops the parser. So the parser never sees a byte above 0x7f: :class:`TextSource`
widens each to the two-byte UTF-8 form of the Latin-1 character with that number (``0xff`` ->
``c3 bf``), which every row decodes from, and :func:`restore` (columns) and :func:`original`
(a handler's row text) narrow them back. The bytes that structure a file (tab, comma, quote,
CR, LF) are ASCII and untouched, so fields, records and line numbers are the file's own.
A piece of pure ASCII (Criteo's hex ids) passes through as it is.

Compressed files are decompressed by pyarrow (gzip, bz2, zstd, lz4 frame; see
:func:`~crossrank.data.files.compression_of`). A stream that fails to decompress (truncated,
not of its suffix's kind, corrupt) does not raise into the parser: the source ends after the
last whole line before the failure (the piece that failed is decompressed again, 1 KiB at a
time, to lose as little as possible) and keeps the reason in :attr:`TextSource.damage`, so the
reader reports the rest of the file as one bad piece. A stream's checksum (gzip's CRC-32,
zstd's optional one) is checked at its end: bytes corrupted in the middle may decode to wrong
lines before the failure shows.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.files import compression_of

_PIECE = 1 << 20  # bytes decompressed at a time
_SALVAGE = 1 << 10  # after damage, the piece it hit is read again this much at a time


def _widen(piece: bytes) -> bytes:
    """Bytes above 0x7f as the UTF-8 of the Latin-1 character with that number."""
    if piece.isascii():
        return piece
    return piece.decode("latin-1").encode("utf-8")


def original(text: str) -> bytes:
    """A row's text as the parser's handler saw it -> the file's bytes.

    Example:
        >>> original(_widen(b"a\\xff\\xe9").decode("utf-8"))
        b'a\\xff\\xe9'
    """
    return text.encode("latin-1")


def restore(values: pa.Array) -> pa.Array:
    """A ``binary`` column parsed from a :class:`TextSource` -> the file's bytes.

    Each two-byte sequence ``c2 xx`` / ``c3 xx`` the source made of one byte becomes that byte
    again, vectorised over the column's data buffer; an ASCII column is returned as it is.

    Example:
        >>> restore(pa.array([_widen(b"\\xff1"), None, b"ab"], pa.binary())).to_pylist()
        [b'\\xff1', None, b'ab']
    """
    if len(values) == 0 or values.null_count == len(values):
        return values
    _, offsets_buf, data_buf = values.buffers()
    if data_buf is None:
        return values
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(values) + 1,
                            offset=values.offset * 4)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8)[lo:hi]
    if len(data) == 0 or int(data.max()) < 0x80:
        return values
    lead = data >= 0xC0  # only c2 and c3 occur: the source wrote every byte above 0x7f
    follow = (data & 0xC0) == 0x80
    narrowed = data.copy()
    lead_at = np.flatnonzero(lead)
    narrowed[lead_at] = ((data[lead_at] & 0x03) << 6) | (data[lead_at + 1] & 0x3F)
    dropped = np.concatenate([[0], np.cumsum(follow, dtype=np.int64)])  # (bytes + 1,)
    new_offsets = (offsets - lo) - dropped[offsets - lo]  # (rows + 1,)
    out = pa.Array.from_buffers(
        pa.binary(), len(values),
        [None, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(narrowed[~follow])],
    )
    if values.null_count:
        out = pc.if_else(values.is_valid(), out, pa.scalar(None, pa.binary()))
    return out


class TextSource(io.RawIOBase):
    """A readable stream of one text file's bytes (decompressed, widened), ending cleanly at
    damage.

    Args:
        path: the file; its suffix says whether and how it is compressed.
        widen: pass bytes above 0x7f as two-byte UTF-8 (for the parser; see the module).

    Attributes:
        damage: why the stream ended early (one line), or None.

    Opening a file that does not exist or cannot be read raises ``OSError``.
    """

    def __init__(self, path: str | Path, *, widen: bool = True) -> None:
        super().__init__()
        self.name = str(path)
        self.widen = widen
        self.damage: str | None = None
        self._stream = pa.input_stream(self.name, compression=compression_of(path))
        self._ready = bytearray()  # whole lines, ready to hand over
        self._tail: list[bytes] = []  # the bytes after the last line break, held back
        self._ended = False
        self._decoded = 0  # bytes the stream gave before the current piece

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (all when negative); fewer only at the end of the stream."""
        while not self._ended and (size is None or size < 0 or len(self._ready) < size):
            self._fill()
        n = len(self._ready) if size is None or size < 0 else min(size, len(self._ready))
        with memoryview(self._ready) as view, view[:n] as part:
            out = bytes(part)  # the one copy
        del self._ready[:n]
        return out

    def _fill(self) -> None:
        try:
            piece = self._stream.read(_PIECE)
        except (OSError, pa.ArrowException) as e:  # decompression failed
            lines = str(e).strip().splitlines()
            why = lines[0] if lines else type(e).__name__
            codec = compression_of(self.name)
            self.damage = (f"the {codec} stream is truncated or corrupt ({why})" if codec
                           else f"reading failed ({why})")
            self._ended = True
            piece = self._salvage()
            if self.widen:
                piece = _widen(piece)
            cut = max(piece.rfind(b"\n"), piece.rfind(b"\r")) + 1
            if cut:  # whole lines before the damage; the part line after them is dropped
                self._ready += b"".join(self._tail)
                self._ready += piece[:cut]
            self._tail = []
            return
        self._decoded += len(piece)
        if not piece:
            self._ready += b"".join(self._tail)
            self._tail = []
            self._ended = True
            return
        if self.widen:
            piece = _widen(piece)
        # cut after the last line break, but never between the CR and LF of a CRLF
        cut = max(piece.rfind(b"\n"), piece.rfind(b"\r", 0, len(piece) - 1)) + 1
        if cut == 0:
            self._tail.append(piece)
            return
        self._ready += b"".join(self._tail)
        self._ready += piece[:cut]
        self._tail = [piece[cut:]]

    def _salvage(self) -> bytes:
        """The bytes of the failed piece that decompress before the failure."""
        out: list[bytes] = []
        try:
            with pa.input_stream(self.name, compression=compression_of(self.name)) as again:
                skip = self._decoded
                while skip > 0:  # read before without a failure: the same bytes again
                    got = len(again.read(min(skip, _PIECE)))
                    if got == 0:
                        return b""
                    skip -= got
                while len(more := again.read(_SALVAGE)):
                    out.append(more)
        except (OSError, pa.ArrowException):
            pass  # the failure again: what came before it is in ``out``
        return b"".join(out)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self._ready = bytearray()
            self._tail = []
        super().close()
