"""A stable 64-bit string hash, vectorised over Arrow string arrays.

``h = fmix64(fnv1a_64(utf8_bytes))``: 64-bit FNV-1a (offset basis ``0xcbf29ce484222325``,
prime ``0x100000001b3``; per byte ``h = (h ^ byte) * prime mod 2**64``) followed by
MurmurHash3's ``fmix64`` finaliser (``h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33``) so the low bits used by ``h % buckets`` mix well.

It depends only on the bytes, never on the process (Python's ``hash()`` is salted per
process), so hashed ids agree across runs, machines and library versions.

Two ways to compute the same numbers, both vectorised:

* a loop over byte positions, each step over every value still that long at once (a few
  numpy operations per position: cheap while many values share it, hex ids and words);
* past the positions that fewer than 256 values reach, a scan over all their remaining bytes
  at once, so one 20 MB value costs ~0.3 s (~15 ns a byte; the loop alone took 79 s).

FNV-1a looks sequential, but only its low byte is: the low byte of ``(h ^ b) * prime`` depends
on the low byte of ``h`` alone (``l' = ((l ^ b) * 0xb3) mod 256``), and bit ``j`` of ``l'`` is
bit ``j`` of ``l ^ b`` XOR a function of the bits below it, so each of the 8 bits is a prefix
XOR once the lower bits are known. With every low byte ``l_k`` known, ``h ^ b_k = h + d_k``
with ``d_k = (l_k ^ b_k) - l_k``, and the rest is linear:
``h_n = h_0 p^n + sum_k d_k p^(n-k) (mod 2**64)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
FMIX_C1 = 0xFF51AFD7ED558CCD
FMIX_C2 = 0xC4CEB9FE1A85EC53

_FEW = 256  # fewer runs than this still to hash: scan their bytes instead of stepping
_SMALL = 64  # at most this many bytes in all: hash them in plain Python integers
_STRIDED = 64  # equal-length values up to this long are stepped through as an (n, L) view
_MASK64 = (1 << 64) - 1
_PIECE = 1 << 20  # a longer value is scanned a piece of this many bytes at a time
_GROUP = 1 << 22  # bytes scanned together (bounds the scan's temporaries to ~100 MB)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= np.uint64(FMIX_C1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(FMIX_C2)
    h ^= h >> np.uint64(33)
    return h


def stable_hash64(values: pa.Array) -> np.ndarray:
    """``fmix64(fnv1a_64(utf8))`` of every value; nulls hash like the empty string.

    Args:
        values: a string or binary Arrow array (``large_*`` and dictionary arrays are accepted;
            anything else is hashed through its text form, e.g. integers as decimal text).

    Shape:
        values: (n,); returns uint64 (n,).

    Example:
        >>> h = stable_hash64(pa.array(["a", "", "a", "a" * 100]))
        >>> h.dtype, bool(h[0] == h[2]), bool(h[0] != h[1])
        (dtype('uint64'), True, True)
        >>> int(stable_hash64(pa.array([""]))[0]) == int(_fmix64(np.array([FNV_OFFSET],
        ...                                                              dtype=np.uint64))[0])
        True
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        raise TypeError(f"values must be a pyarrow Array, got {type(values).__name__}")
    if pa.types.is_dictionary(values.type):
        empty = _fmix64(np.array([FNV_OFFSET], dtype=np.uint64))
        table = np.concatenate([stable_hash64(values.dictionary), empty])
        return table[values.indices.fill_null(len(values.dictionary)).to_numpy()]
    t = values.type
    offset_type: type[np.signedinteger]
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        offset_type = np.int64
    elif pa.types.is_string(t) or pa.types.is_binary(t):
        offset_type = np.int32
    else:
        return stable_hash64(pc.cast(values, pa.string()))
    n = len(values)
    h = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type, count=n + 1, offset=values.offset
                            * np.dtype(offset_type).itemsize).astype(np.int64)
    lengths = np.diff(offsets)
    if values.null_count:
        lengths[values.is_null().to_numpy(zero_copy_only=False)] = 0
    longest = int(lengths.max())
    if longest == 0 or data_buf is None:
        return _fmix64(h)
    data = np.frombuffer(data_buf, dtype=np.uint8)
    if int(lengths.sum()) <= _SMALL:
        return _fmix64(_fnv_small(h, data, offsets[:-1], lengths))
    return _fmix64(_fnv(h, data, offsets[:-1], lengths))


def stable_hash64_one(data: bytes) -> int:
    """:func:`stable_hash64` of one value's UTF-8 bytes, in plain Python integers: for a few
    values (one row being scored), where even the small vectorised path costs ~40 us a call.

    Example:
        >>> stable_hash64_one("a".encode()) == int(stable_hash64(pa.array(["a"]))[0])
        True
    """
    x = _fnv_py(FNV_OFFSET, data)
    x ^= x >> 33
    x = (x * FMIX_C1) & _MASK64
    x ^= x >> 33
    x = (x * FMIX_C2) & _MASK64
    return x ^ (x >> 33)


def _fnv_small(h: np.ndarray, data: np.ndarray, starts: np.ndarray,
               lengths: np.ndarray) -> np.ndarray:
    """FNV-1a continued from ``h``, byte by byte in Python integers: for a few bytes in all
    (one row being scored), where the vectorised passes' fixed cost (~0.1 ms) dominates."""
    out = h.copy()
    for k, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        out[k] = _fnv_py(int(out[k]), data[start:start + length].tobytes())
    return out


def _fnv_py(x: int, data: bytes) -> int:
    """FNV-1a continued from ``x`` over ``data``, in Python integers."""
    for byte in data:
        x = ((x ^ byte) * FNV_PRIME) & _MASK64
    return x


def _fnv(h: np.ndarray, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a continued from ``h`` over the runs ``data[starts : starts + lengths]``.

    Byte positions are stepped through while at least _FEW runs are that long (each step costs
    ~10 us plus ~5 ns a run); the bytes of the few longest runs past that point are scanned
    (~15 ns a byte, no cost per position).
    """
    n = len(h)
    desc = -np.sort(-lengths)  # lengths, longest first
    stepped = int(desc[_FEW - 1]) if n >= _FEW else 0  # positions with >= _FEW runs active
    if stepped == 0 and int(desc[0]) == 0:
        return h
    prime = np.uint64(FNV_PRIME)
    first = int(starts[0])
    same = int(desc[0]) == int(desc[-1])
    if same and (stepped or int(desc[0]) <= _STRIDED) and \
            int(starts[-1]) == first + (n - 1) * int(desc[0]):
        # every value has the same length, back to back (hex ids): a strided (n, L) view,
        # also for fewer than _FEW values while they are short (a request's few rows)
        width = int(desc[0])
        block = data[first : first + n * width].reshape(n, width)
        for j in range(width):
            h ^= block[:, j]
            h *= prime
        return h
    h = h.copy()
    order = np.argsort(-lengths, kind="stable")  # longest first: active rows form a prefix
    active = np.searchsorted(-desc, -np.arange(stepped + 1), side="left")  # runs longer than j
    for j in range(stepped):
        rows = order[: active[j]]
        h[rows] = (h[rows] ^ data[starts[rows] + j]) * prime
    rows = order[: active[stepped]]
    if len(rows):
        h[rows] = _scan_long(h[rows], data, starts[rows] + stepped, lengths[rows] - stepped)
    return h


@lru_cache(maxsize=2)
def _powers(count: int) -> np.ndarray:
    """``prime ** e mod 2**64`` for e = 0 .. count (uint64 products wrap modulo 2**64)."""
    out = np.empty(count + 1, dtype=np.uint64)
    out[0] = 1
    out[1:] = np.multiply.accumulate(np.full(count, FNV_PRIME, dtype=np.uint64))
    return out


def _scan_long(h: np.ndarray, data: np.ndarray, starts: np.ndarray,
               lengths: np.ndarray) -> np.ndarray:
    """FNV-1a continued from ``h`` over long runs: pieces of at most _PIECE bytes of every run,
    in order, each group of pieces (about _GROUP bytes) scanned at once."""
    h = h.copy()
    for offset in range(0, int(lengths.max()), _PIECE):
        active = np.flatnonzero(lengths > offset)
        piece = np.minimum(lengths[active] - offset, _PIECE)
        ends = np.cumsum(piece)
        lo = 0
        while lo < len(active):
            hi = max(int(np.searchsorted(ends, ends[lo] - piece[lo] + _GROUP, side="right")), lo + 1)
            rows = active[lo:hi]
            h[rows] = _scan(h[rows], data, starts[rows] + offset, piece[lo:hi])
            lo = hi
    return h


def _scan(h: np.ndarray, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a continued from ``h`` over non-empty runs ``data[starts : starts + lengths]``,
    every byte at once (the method in the module docstring)."""
    first = np.cumsum(lengths) - lengths  # (R,) where each run starts among the N bytes
    within = np.arange(int(lengths.sum())) - np.repeat(first, lengths)  # (N,) index in run
    b = data[np.repeat(starts, lengths) + within]  # (N,) the runs' bytes back to back
    init = h & np.uint64(0xFF)  # (R,) each run's starting low byte
    low = np.zeros(len(b), dtype=np.uint8)  # bits 0..j-1 of the low byte before each byte
    for j in range(8):
        x = (low ^ b) & np.uint8((1 << j) - 1)
        carry = ((x.astype(np.uint16) * np.uint16(FNV_PRIME & 0xFF)) >> j).astype(np.uint8)
        flip = ((b >> j) ^ carry) & np.uint8(1)  # bit j of l' = bit j of l ^ flip
        before = np.bitwise_xor.accumulate(flip) ^ flip  # XOR of the flips before each byte
        base = (before[first] ^ (init >> np.uint64(j)).astype(np.uint8)) & np.uint8(1)
        low |= (before ^ np.repeat(base, lengths)) << np.uint8(j)  # ... within its own run
    d = ((low ^ b).astype(np.int16) - low).astype(np.int64).view(np.uint64)  # h ^ b = h + d
    powers = _powers(_PIECE)
    # byte i of a run of n is multiplied by p ** (n - i): the powers n .. 1, back to back
    factors = powers[np.repeat(lengths, lengths) - within]
    sums = np.add.reduceat(d * factors, first)  # (R,) wraps modulo 2**64
    return h * powers[lengths] + sums
