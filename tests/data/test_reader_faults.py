"""Readers under real faults: binary garbage, damaged compressed streams, damaged or fake
Parquet, huge values, and the one meaning of an empty string. Every fault is injected into the
bytes of a real file; nothing of the code under test is mocked."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from crossrank.data import (
    BadInputError,
    FeatureEncoder,
    RejectsLog,
    TableSchema,
    check_columns,
    infer_format,
    infer_schema,
    iter_tables,
    read_table,
)

SCHEMA = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2"))
# a printed "Exception ignored ..." (pyarrow's handler failing to decode a row) fails the test
no_unraisable = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rows(n: int, first: int = 0) -> list[bytes]:
    return [b"%d\t%d\t\t%s\tc%d" % (i % 2, i, b"x%x" % i, i % 7) for i in range(first, first + n)]


def _text(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


# ------------------------------------------------------------------------ 1. binary garbage
@no_unraisable
@pytest.mark.parametrize("fmt", ["criteo", "csv"])
def test_garbage_is_one_clean_error_or_counted_rejects(tmp_path, capfd, fmt):
    path = tmp_path / ("g.tsv" if fmt == "criteo" else "g.csv")
    header = b"label,I1,I2,C1,C2\n" if fmt == "csv" else b""
    path.write_bytes(header + _garbage(200_000, seed=1))
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt=fmt, schema=SCHEMA)
    assert info.value.line == (1 if fmt == "criteo" else 2)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    fds = _open_fds()
    for _ in range(3):  # a leaked handle per resume (the old reader) would pile up here
        log = RejectsLog()
        table = read_table(path, fmt=fmt, schema=SCHEMA, on_bad_rows="skip", rejects=log)
        assert table.num_rows == 0 and log.total > 1000
        assert set(log.counts) <= {"wrong_field_count", "blank_row", "invalid_utf8",
                                   "line_break_in_field", "non_numeric", "bad_label"}
    assert _open_fds() == fds
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@no_unraisable
def test_garbage_rows_among_good_ones_keep_every_good_row_and_line(tmp_path, capfd):
    good = _rows(3000)
    lines = list(good)
    junk_at = sorted(random.Random(2).sample(range(3000), 300))
    for k, i in enumerate(junk_at):  # junk without line breaks: exactly one line each
        junk = _garbage(40, seed=k).replace(b"\n", b"").replace(b"\r", b"")
        lines.insert(i + k, junk)
    path = tmp_path / "mixed.tsv"
    path.write_bytes(_text(lines))
    with RejectsLog(tmp_path / "r.jsonl") as log:
        table = read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table["I1"].to_pylist() == [float(i) for i in range(3000)]
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [i + k + 1 for k, i in enumerate(junk_at)]
    assert capfd.readouterr() == ("", "")


@no_unraisable
def test_invalid_utf8_with_the_wrong_field_count_in_csv_is_skipped(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"label,I1,I2,C1,C2\n1,1,2,a,b\n\xff\xfe,\x80\n0,3,4,c,d\n")
    log = RejectsLog()
    table = read_table(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table["I1"].to_pylist() == [1.0, 3.0]
    assert log.counts == {"wrong_field_count": 1}


# -------------------------------------------------------------------- 2. compressed input
def _compress(codec: str, data: bytes) -> bytes:
    if codec == "gz":
        return gzip.compress(data)
    if codec == "bz2":
        return bz2.compress(data)
    name = {"zst": "zstd", "lz4": "lz4"}[codec]
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, name) as f:
        f.write(data)
    return sink.getvalue().to_pybytes()


def test_formats_are_told_past_a_compression_suffix(tmp_path):
    assert infer_format("day_0.tsv.gz", None) == "criteo"
    assert infer_format("x.csv.zst", None) == "csv"
    assert infer_format("x.CSV.BZ2", None) == "csv"
    assert infer_format("part.txt.lz4", None) == "criteo"
    with pytest.raises(ValueError, match="cannot tell"):
        infer_format("x.gz", None)
    with pytest.raises(ValueError, match="decompress it first"):
        infer_format("x.parquet.gz", None)
    shards = tmp_path / "days"
    shards.mkdir()
    for k in range(2):
        (shards / f"day_{k}.tsv.gz").write_bytes(gzip.compress(_text(_rows(3))))
    (shards / "_SUCCESS").write_bytes(b"")
    assert infer_format(shards, None) == "criteo"


@pytest.mark.parametrize("codec", ["gz", "bz2", "zst", "lz4"])
def test_every_compression_reads_like_the_plain_file(tmp_path, codec):
    data = _text(_rows(5000))
    path = tmp_path / f"day.tsv.{codec}"
    path.write_bytes(_compress(codec, data))
    table = read_table(path, fmt=infer_format(path, None), schema=SCHEMA)
    assert table["I1"].to_pylist() == [float(i) for i in range(5000)]


@no_unraisable
@pytest.mark.parametrize("codec", ["gz", "bz2", "zst"])
def test_a_truncated_stream_keeps_the_rows_before_and_is_one_bad_piece(tmp_path, capfd, codec):
    n = 250_000 if codec == "bz2" else 60_000  # bz2 decodes whole 900 kB blocks
    data = _text(_rows(n))
    whole = _compress(codec, data)
    path = tmp_path / f"day.tsv.{codec}"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    e = info.value
    assert (e.file, e.reason) == (str(path), "bad_file")
    assert "truncated or corrupt" in e.detail and "\n" not in str(e)
    with RejectsLog(tmp_path / "r.jsonl") as log:
        table = read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    kept = table.num_rows
    # the rows before the damage, in order, none twice; the damage is one reject after them
    assert table["I1"].to_pylist() == [float(i) for i in range(kept)]
    assert 0 < kept < n * 3 // 4
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["line"]) for r in records] == [("bad_file", kept + 1)]
    assert e.line == kept + 1
    assert capfd.readouterr() == ("", "")


def test_a_small_truncated_stream_still_keeps_most_of_its_rows(tmp_path):
    # the whole file fits in the one piece that fails: it is decompressed again in small
    # pieces, so the lines before the cut are not lost with it
    path = tmp_path / "small.csv.gz"
    data = b"label,I1,I2,C1,C2\n" + b"".join(b"%d,%d,,a,b\n" % (i % 2, i) for i in range(1000))
    path.write_bytes(gzip.compress(data)[:-20])  # the trailer and a little of the data
    log = RejectsLog()
    table = read_table(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table["I1"].to_pylist() == [float(i) for i in range(table.num_rows)]
    assert table.num_rows > 500 and log.counts == {"bad_file": 1}


@no_unraisable
def test_a_file_that_is_not_its_suffixs_compression_fails_at_line_1(tmp_path, capfd):
    path = tmp_path / "day.tsv.gz"
    path.write_bytes(_text(_rows(10)))  # plain text behind a .gz name
    with pytest.raises(BadInputError, match=r"day\.tsv\.gz line 1: the gzip stream is "
                                            r"truncated or corrupt \(.*incorrect header"):
        read_table(path, fmt="criteo", schema=SCHEMA)
    log = RejectsLog()
    assert read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip",
                      rejects=log).num_rows == 0
    assert log.counts == {"bad_file": 1}
    with pytest.raises(BadInputError, match="day.tsv.gz line 1"):
        check_columns(path, "criteo", SCHEMA)
    assert capfd.readouterr() == ("", "")


@no_unraisable
def test_flipped_bytes_inside_a_gzip_stream_are_one_bad_piece(tmp_path):
    data = _text(_rows(40_000))
    whole = bytearray(gzip.compress(data))
    middle = len(whole) // 2
    whole[middle : middle + 64] = bytes(64)  # zeroed: invalid deflate codes or a CRC error
    path = tmp_path / "day.tsv.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(BadInputError):  # the first problem in file order: a garbled line
        read_table(path, fmt="criteo", schema=SCHEMA)
    log = RejectsLog()
    table = read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert log.counts.get("bad_file") == 1
    # gzip checks its CRC only at the end of the stream: the damaged middle may decode to
    # lines (here, copies of earlier ones through deflate's back-references) that were read
    # before the damage could be known; it is still reported, once.
    kept = table["I1"].to_pylist()
    assert set(kept) <= {float(i) for i in range(40_000)}


# ------------------------------------------------------------------------------ 3. Parquet
def _parquet_file(tmp_path: Path, n: int = 40_000, name: str = "d.parquet") -> Path:
    path = tmp_path / name
    table = pa.table({"label": [float(i % 2) for i in range(n)],
                      "I1": [float(i) for i in range(n)], "I2": [1.0] * n,
                      "C1": [f"v{i}" for i in range(n)], "C2": ["x"] * n})
    pq.write_table(table, path, row_group_size=10_000)
    return path


def test_a_parquet_list_column_is_one_line_naming_file_and_column(tmp_path):
    for column, values in (("I1", [[1.0], [2.0]]), ("C1", [["a"], ["b"]]),
                           ("label", [{"x": 1}, {"x": 0}])):
        table = {"label": [1.0, 0.0], "I1": [1.0, 2.0], "I2": [1.0, 2.0], "C1": ["a", "b"],
                 "C2": ["c", "d"], column: values}
        path = tmp_path / f"list_{column}.parquet"
        pq.write_table(pa.table(table), path)
        with pytest.raises(BadInputError) as info:
            read_table(path, fmt="parquet", schema=SCHEMA)
        e = info.value
        assert (e.file, e.column, e.reason) == (str(path), column, "bad_file")
        assert str(e).startswith(f"{path}, column {column}: has type ")
        assert "must hold" in e.detail and "\n" not in str(e)
    with pytest.raises(BadInputError, match="C1"):
        infer_schema(tmp_path / "list_C1.parquet", "parquet", label="label",
                     categorical=["C1"])


def test_fake_and_truncated_parquet_name_the_file_in_one_line(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"label,I1,I2,C1,C2\n1,2,3,a,b\n")
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(_parquet_file(tmp_path).read_bytes()[:-100])
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    for path in (fake, cut, empty):
        for read in (lambda p: read_table(p, fmt="parquet", schema=SCHEMA),
                     lambda p: check_columns(p, "parquet", SCHEMA),
                     lambda p: infer_schema(p, "parquet", label="label")):
            with pytest.raises(BadInputError) as info:
                read(path)
            assert str(info.value).startswith(f"{path}: not a Parquet file: it does not end "
                                              "with Parquet's 'PAR1' marker")
            assert "\n" not in str(info.value)


def test_a_damaged_parquet_page_keeps_the_rows_before_and_is_one_bad_piece(tmp_path):
    path = _parquet_file(tmp_path)
    meta = pq.ParquetFile(path).metadata
    page = meta.row_group(2).column(0).data_page_offset  # row group 2 starts at row 20,000
    data = bytearray(path.read_bytes())
    data[page + 20 : page + 60] = b"\xff" * 40
    path.write_bytes(bytes(data))
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="parquet", schema=SCHEMA)
    e = info.value
    assert (e.file, e.row, e.reason) == (str(path), 20_000, "bad_file")
    assert e.detail.startswith("damaged Parquet data in row group 2 (") and "\n" not in str(e)
    assert e.detail.endswith("; its rows 20000..29999 are unread")
    log = RejectsLog()
    tables = list(iter_tables(path, fmt="parquet", schema=SCHEMA, chunk_rows=4096,
                              on_bad_rows="skip", rejects=log))
    # every other row group is read: the footer says where each one starts
    expected = [float(i) for i in range(40_000) if not 20_000 <= i < 30_000]
    assert [v for t in tables for v in t["I1"].to_pylist()] == expected
    assert log.counts == {"bad_file": 1}


# ------------------------------------------------------------- 4. long values in messages
def test_messages_show_at_most_about_100_characters_of_a_value(tmp_path):
    huge = b"z" * 1_000_000
    path = tmp_path / "long.tsv"
    path.write_bytes(_text(_rows(3) + [b"0\t" + huge + b"\t\ta\tb"]))
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    detail = info.value.detail
    assert info.value.line == 4 and len(detail) < 160
    assert detail.startswith("non-numeric dense value 'zzz") and detail.endswith(
        "... (1000000 characters)")
    bad = b"\xff" + b"y" * 500_000
    path.write_bytes(_text([b"0\t1\t2\t" + bad + b"\tb"]))
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    assert len(info.value.detail) < 160 and info.value.detail.endswith("(500001 bytes)")
    header = tmp_path / "wide.csv"
    header.write_bytes(b"label,I1," + b"h" * 100_000 + b"\n1,2,3\n")
    with pytest.raises(BadInputError) as info:
        read_table(header, fmt="csv", schema=SCHEMA)
    assert len(str(info.value)) < 400


def test_a_20_mb_categorical_value_is_read_and_encoded(tmp_path):
    value = b"".join(bytes([97 + i % 26]) * (1 << 20) for i in range(20))
    path = tmp_path / "big.tsv"
    path.write_bytes(_text(_rows(5) + [b"1\t1\t2\t" + value + b"\tq"] + _rows(5, first=5)))
    table = read_table(path, fmt="criteo", schema=SCHEMA)
    assert table.num_rows == 11 and len(table["C1"][5].as_py()) == 20 << 20
    ids = FeatureEncoder(SCHEMA, hash_buckets=1000).fit([table]).transform(table).sparse
    assert ids.shape == (11, 2) and int(ids.min()) >= 1


def test_a_record_longer_than_the_parsers_block_is_one_bad_piece(tmp_path):
    # a short-lined start makes the block its 16 MiB floor; a record may straddle two blocks
    # but not three: one 34 MB line
    path = tmp_path / "runaway.tsv"
    path.write_bytes(_text(_rows(100) + [b"1\t1\t2\t" + b"r" * (34 << 20) + b"\tq"]
                           + _rows(10, first=100)))
    with pytest.raises(BadInputError) as info:
        list(iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=10))
    assert (info.value.reason, info.value.line) == ("bad_file", 101)
    assert "longer than the reader's block" in info.value.detail
    log = RejectsLog()
    tables = list(iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=10,
                              on_bad_rows="skip", rejects=log))
    assert sum(t.num_rows for t in tables) == 100 and log.counts == {"bad_file": 1}


# ------------------------------------------------------------ 5. empty string = missing
def test_an_empty_string_is_missing_in_every_format(tmp_path):
    table = pa.table({
        "label": pa.array([1.0, 0.0, 1.0, 0.0, 1.0]),
        "I1": pa.array(["1", "", None, "4", "5"]),
        "I2": pa.array([1.0, 2.0, None, 4.0, 5.0]),
        "C1": pa.array(["a", "", None, "b", "a"]),
        "C2": pa.array(["", "", "x", None, "y"]),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    pa_csv.write_csv(table, tmp_path / "t.csv")
    rows = zip(*[[("" if v is None else str(v)) for v in table[c].to_pylist()]
                 for c in table.column_names], strict=True)
    (tmp_path / "t.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    read = {fmt: read_table(tmp_path / f"t.{ext}", fmt=fmt, schema=SCHEMA)
            for fmt, ext in (("parquet", "parquet"), ("csv", "csv"), ("criteo", "tsv"))}
    for got in read.values():
        assert got.to_pydict() == read["parquet"].to_pydict()
    assert read["parquet"]["C1"].to_pylist() == ["a", None, None, "b", "a"]
    assert read["parquet"]["I1"].to_pylist() == [1.0, None, None, 4.0, 5.0]
    for options in ({}, {"hash_buckets": 50}):
        encoder = FeatureEncoder(SCHEMA, **options).fit([read["csv"]])
        ids = {fmt: encoder.transform(t).sparse for fmt, t in read.items()}
        for got in ids.values():
            np.testing.assert_array_equal(got, ids["parquet"])
        assert ids["parquet"][:, 0].tolist()[1:3] == [0, 0]  # "" and null: the missing id
    sample = infer_schema(tmp_path / "t.parquet", "parquet", label="label")
    assert sample.column("C2").missing == pytest.approx(0.6)


def test_each_reject_stays_on_one_line_for_any_line_splitter(tmp_path):
    # found by the fuzz test: U+0085 (from the bytes c2 85) is a line break to splitlines()
    path = tmp_path / "nel.tsv"
    path.write_bytes(b"\xc2\x85\n1\t\xe2\x80\xa8\n0\t1\t2\ta\tb\n")
    with RejectsLog(tmp_path / "r.jsonl") as log:
        read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    text = (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    records = [json.loads(x) for x in text.splitlines()]
    assert [(r["line"], r["raw"]) for r in records] == [(1, "\x85"), (2, "1\t\u2028")]
