"""The stable hash: checked against the documented algorithm written out by hand."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data import stable_hash64

MASK = (1 << 64) - 1


def reference_hash(text: str) -> int:
    """FNV-1a 64 over the UTF-8 bytes, then MurmurHash3 fmix64, in plain Python integers."""
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    h ^= h >> 33
    return h


def test_fnv_offset_basis_is_the_hash_of_nothing_before_mixing():
    # FNV-1a of the empty string is the offset basis; the published FNV-1a 64 of "a" is
    # 0xaf63dc4c8601ec8c. Check both stages of the reference against those known values.
    h = 0xCBF29CE484222325
    h = ((h ^ ord("a")) * 0x100000001B3) & MASK
    assert h == 0xAF63DC4C8601EC8C


def test_matches_reference_on_mixed_lengths_unicode_slices_and_nulls():
    rng = random.Random(0)
    values = ["".join(rng.choice("ab7é€😀\t") for _ in range(rng.randint(0, 14)))
              for _ in range(500)]
    arr = pa.array(values)
    assert [int(h) for h in stable_hash64(arr)] == [reference_hash(v) for v in values]
    assert [int(h) for h in stable_hash64(arr.slice(13, 50))] == [
        reference_hash(v) for v in values[13:63]]
    fixed = [f"{rng.getrandbits(32):08x}" for _ in range(300)]  # the same-length fast path
    assert [int(h) for h in stable_hash64(pa.array(fixed).slice(5))] == [
        reference_hash(v) for v in fixed[5:]]
    with_null = pa.array(["ab", None, "c"])
    assert [int(h) for h in stable_hash64(with_null)] == [
        reference_hash("ab"), reference_hash(""), reference_hash("c")]
    encoded = pa.array(["x", None, "y", "x"]).dictionary_encode()
    assert [int(h) for h in stable_hash64(encoded)] == [
        reference_hash(v) for v in ("x", "", "y", "x")]
    assert [int(h) for h in stable_hash64(pa.array([12, -3]))] == [
        reference_hash("12"), reference_hash("-3")]
    assert [int(h) for h in stable_hash64(pa.array(["ab"], pa.large_string()))] == [
        reference_hash("ab")]


def test_output_is_uint64_and_empty_input_works():
    assert stable_hash64(pa.array([], pa.string())).dtype == np.uint64
    assert len(stable_hash64(pa.array([], pa.string()))) == 0


# Hashes computed by crossrank 0.1.0's per-byte loop (before the scan for long values):
# vocabularies and hashed ids saved by earlier versions must keep meaning the same thing.
KNOWN_HASHES = [
    ("", 0xEFD01F60BA992926),
    ("a", 0x82A2A958A9BECE5B),
    ("68fd1e64", 0xA9AB96D049FC30DB),
    ("é€😀\t", 0x30C41BDAD759F8A0),
    ("x" * 64, 0x6A5DEFDDB71A257D),
    ("x" * 65, 0xEE0997E77B4548B3),
    ("ab" * 500, 0x57B8A017347F34F2),
    ("".join(chr(33 + i * 7 % 90) for i in range(100_000)), 0xACA076C742CE0192),
    ("é€😀" * 3000, 0xE49182F8FBA9C075),
    ("".join(chr(33 + i * 13 % 94) for i in range(1 << 20)), 0x446C17403443F05E),
    ("".join(chr(33 + i * 13 % 94) for i in range(5 << 19)), 0x0EB5E32719BC8721),  # 3 pieces
]


def test_hashes_saved_by_earlier_versions_do_not_change():
    values = [v for v, _ in KNOWN_HASHES]
    expected = [h for _, h in KNOWN_HASHES]
    assert [int(h) for h in stable_hash64(pa.array(values))] == expected
    # the same values among many short ones (the per-position steps, then the scan)
    many = [f"{i:08x}" for i in range(3000)] + values
    assert [int(h) for h in stable_hash64(pa.array(many))][3000:] == expected
    assert [int(h) for h in stable_hash64(pa.array(values, pa.large_binary()))] == expected


def test_matches_reference_when_many_values_are_long():
    # more long values than the stepping threshold, of every length around it
    rng = random.Random(1)
    values = ["".join(rng.choice("xyé😀") for _ in range(rng.choice([0, 3, 40, 300, 2000])))
              for _ in range(1200)]
    arr = pa.array(values)
    assert [int(h) for h in stable_hash64(arr)] == [reference_hash(v) for v in values]
    assert [int(h) for h in stable_hash64(arr.slice(1, 700))] == [
        reference_hash(v) for v in values[1:701]]


def test_a_20_mb_value_hashes_the_same_in_pieces_of_any_size(monkeypatch):
    # 20 MB through the old per-byte loop took 79 s. A long value is scanned a piece at a
    # time, the FNV state carried from piece to piece: the pieces' size must not matter.
    from crossrank.data import hashing

    value = b"".join(bytes([97 + i % 26]) * (1 << 20) for i in range(20)) + "é".encode()
    arr = pa.array([b"short", value, value[:-1]], pa.binary())
    h = stable_hash64(arr)
    assert len(set(h.tolist())) == 3
    monkeypatch.setattr(hashing, "_PIECE", 3 << 18)  # 768 KiB: pieces cut across the runs
    assert stable_hash64(arr).tolist() == h.tolist()
    assert stable_hash64(pa.array([b"short", value, value[:-1]], pa.large_binary())).tolist() == (
        h.tolist())


def test_a_few_bytes_hash_alike_by_the_small_path_and_the_vectorised_one(monkeypatch):
    from crossrank.data import hashing

    rng = random.Random(1)
    values: list = []
    while True:  # as many as fit in the small path's byte budget
        value = None if rng.random() < 0.1 else \
            "".join(rng.choice("ab7é€😀\t") for _ in range(rng.randint(0, 4)))
        if sum(len((v or "").encode()) for v in [*values, value]) > hashing._SMALL:
            break
        values.append(value)
    assert len(values) >= 4
    arr = pa.array(values, pa.string())
    expected = [reference_hash(v or "") for v in values]
    assert int(pc.sum(pc.binary_length(arr)).as_py()) <= hashing._SMALL
    assert stable_hash64(arr).tolist() == expected  # the small path
    monkeypatch.setattr(hashing, "_SMALL", 0)
    assert stable_hash64(arr).tolist() == expected  # the vectorised passes


def test_few_values_of_one_length_and_the_scan_match_the_reference():
    """Fewer than _FEW values of one length take the strided pass (up to _STRIDED bytes) or
    the scan (longer); a slice of an array is not back to back from byte 0."""
    from crossrank.data import hashing

    rng = random.Random(2)
    for width in (1, 8, hashing._STRIDED, hashing._STRIDED + 1, 300):
        values = ["".join(rng.choice("0123456789abcdef") for _ in range(width))
                  for _ in range(50)]
        for arr in (pa.array(values), pa.array(["x" * 3] + values).slice(1)):
            assert stable_hash64(arr).tolist() == [reference_hash(v) for v in values], width
