"""Readers: every kind of bad row, exact places, rejects, shards, formats and the real data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrank.data import (
    BadInputError,
    RejectsLog,
    TableSchema,
    criteo_schema,
    iter_tables,
    list_shards,
    read_table,
)

SCHEMA = TableSchema(label="label", dense=("I1", "I2", "I3"), categorical=("C1", "C2"))
GOOD = "0\t1\t2\t3\ta\tb"

# (bad line, reason, column, message without the place)
BAD_LINES = [
    ("1\t2\t3", "wrong_field_count", None, "expected 6 fields, got 3"),
    ("0\t1\t2\t3\ta\tb\tc", "wrong_field_count", None, "expected 6 fields, got 7"),
    ("", "blank_row", None, "blank line (every field empty)"),
    ("\t\t\t\t\t", "blank_row", None, "blank line (every field empty)"),
    ("\t1\t2\t3\ta\tb", "missing_label", "label", "missing label"),
    ("2\t1\t2\t3\ta\tb", "bad_label", "label", "label must be 0 or 1 for task 'binary', got '2'"),
    ("0.5\t1\t2\t3\ta\tb", "bad_label", "label",
     "label must be 0 or 1 for task 'binary', got '0.5'"),
    ("yes\t1\t2\t3\ta\tb", "bad_label", "label", "non-numeric label 'yes'"),
    ("0\t1\t2\tabc\ta\tb", "non_numeric", "I3", "non-numeric dense value 'abc'"),
    ("0\t1\t 2\t3\ta\tb", "non_numeric", "I2", "non-numeric dense value ' 2'"),
    ("0\tnan\t2\t3\ta\tb", "non_finite", "I1", "non-finite dense value 'nan'"),
    ("0\t1\t-inf\t3\ta\tb", "non_finite", "I2", "non-finite dense value '-inf'"),
    ("0\t1\t1e999\t3\ta\tb", "non_finite", "I2", "non-finite dense value '1e999'"),
    (b"0\t1\t2\t3\t\xff\xfeab\tb", "invalid_utf8", "C1", "invalid UTF-8 in value b'\\xff\\xfeab'"),
    (b"0\t1\t\xe92\t3\ta\tb", "invalid_utf8", "I2", "invalid UTF-8 in value b'\\xe92'"),
]


@pytest.mark.parametrize(("bad", "reason", "column", "detail"), BAD_LINES)
def test_each_bad_row_raises_with_file_line_and_column(write_lines, bad, reason, column, detail):
    path = write_lines("criteo.tsv", [GOOD] * 16 + [bad] + [GOOD] * 5)
    with pytest.raises(BadInputError) as info:
        for _ in iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=5):
            pass
    e = info.value
    assert (e.file, e.line, e.column, e.reason, e.detail) == (str(path), 17, column, reason, detail)
    place = f"{path} line 17" + (f", column {column}" if column else "")
    assert str(e) == f"{place}: {detail}"
    assert "\n" not in str(e)


def test_message_format_matches_the_documented_example(write_lines):
    path = write_lines("criteo.tsv", [GOOD] * 16 + ["0\t1\t2\tabc\ta\tb"])
    with pytest.raises(BadInputError, match=r"criteo\.tsv line 17, column I3: non-numeric dense "
                                            r"value 'abc'$"):
        read_table(path, fmt="criteo", schema=SCHEMA)


def test_skip_logs_every_bad_row_with_place_reason_and_raw_text(write_lines, tmp_path):
    lines: list[str | bytes] = []
    for bad, *_ in BAD_LINES:
        lines += [GOOD, bad]
    path = write_lines("mixed.tsv", lines)
    with RejectsLog(tmp_path / "rejects.jsonl") as log:
        tables = list(iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=4,
                                  on_bad_rows="skip", rejects=log))
    assert sum(t.num_rows for t in tables) == len(BAD_LINES)  # every good row, nothing else
    assert all(t.column_names == list(SCHEMA.column_names) for t in tables)
    records = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [2 * (i + 1) for i in range(len(BAD_LINES))]
    assert [(r["reason"], r["column"], r["message"]) for r in records] == [
        (reason, column, detail) for _, reason, column, detail in BAD_LINES
    ]
    assert {r["file"] for r in records} == {str(path)}
    assert records[0]["raw"] == "1\t2\t3"
    assert records[8]["raw"] == "0\t1\t2\tabc\ta\tb"
    assert records[13]["raw"] == "0\t1\t2\t3\t\\xff\\xfeab\tb"
    expected: dict[str, int] = {}
    for _, reason, _, _ in BAD_LINES:
        expected[reason] = expected.get(reason, 0) + 1
    assert log.counts == expected
    assert log.total == len(BAD_LINES)


def _stress_file(write_lines, n: int = 20000) -> tuple[Path, list[int], list[int]]:
    """Line i holds I1 = i; some lines are bad in different ways. Returns good and bad lines."""
    lines, good, bad = [], [], []
    for i in range(1, n + 1):
        if i % 7 == 3:
            lines.append(f"1\t{i}")  # too few fields
        elif i % 11 == 5:
            lines.append(f"0\t{i}\tx\t3\ta\tb")  # non-numeric I2
        elif i % 13 == 0:
            lines.append("")  # blank
        else:
            lines.append(f"{i % 2}\t{i}\t\t7\tc{i % 50}\t")
            good.append(i)
            continue
        bad.append(i)
    return write_lines("stress.tsv", lines), good, bad


def test_line_numbers_stay_exact_across_blocks_chunks_and_skips(write_lines, tmp_path):
    path, good, bad = _stress_file(write_lines)
    assert path.stat().st_size > 4 * (1 << 16)  # several pyarrow blocks
    with RejectsLog(tmp_path / "r.jsonl") as log:
        tables = list(iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=1000,
                                  on_bad_rows="skip", rejects=log))
    assert [t.num_rows for t in tables[:-1]] == [1000] * (len(tables) - 1)
    out = [int(v) for t in tables for v in t.column("I1").to_pylist()]
    assert out == good
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == bad
    for r in records:
        if r["reason"] != "blank_row":
            assert r["raw"].split("\t")[1] == str(r["line"])  # the raw text is that line's
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        ([GOOD, "0\tx\t2\t3\ta\tb", "1\t2"], 2, "non_numeric"),
        ([GOOD, "1\t2", "0\tx\t2\t3\ta\tb"], 2, "wrong_field_count"),
        (["1\t2\t3", GOOD], 1, "wrong_field_count"),
        ([GOOD, GOOD, "1\t2\t3"], 3, "wrong_field_count"),
    ],
)
def test_error_mode_reports_the_first_bad_row_in_file_order(write_lines, lines, line, reason):
    path = write_lines("order.tsv", lines)
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    assert (info.value.line, info.value.reason) == (line, reason)


def test_good_rows_are_typed_and_missing_values_are_nulls(write_lines):
    path = write_lines("ok.tsv", ["1\t5\t\t-2.5\tx\t", "0\t\t1e3\t0\t\ty"])
    table = read_table(path, fmt="criteo", schema=SCHEMA)
    assert table.schema.types == [pa.float64()] * 4 + [pa.string()] * 2
    assert table.to_pydict() == {
        "label": [1.0, 0.0], "I1": [5.0, None], "I2": [None, 1000.0], "I3": [-2.5, 0.0],
        "C1": ["x", None], "C2": [None, "y"],
    }


def test_regression_labels_must_be_finite_numbers(write_lines):
    schema = TableSchema(label="label", dense=("I1", "I2", "I3"), categorical=("C1", "C2"),
                         task="regression")
    path = write_lines("r.tsv", ["3.5\t1\t2\t3\ta\tb", "-1\t1\t2\t3\ta\tb"])
    assert read_table(path, fmt="criteo", schema=schema)["label"].to_pylist() == [3.5, -1.0]
    path = write_lines("r2.tsv", ["3.5\t1\t2\t3\ta\tb", "inf\t1\t2\t3\ta\tb"])
    with pytest.raises(BadInputError, match="line 2, column label: label must be a finite"):
        read_table(path, fmt="criteo", schema=schema)


def test_empty_file_raises_or_is_logged(write_lines, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match=r"empty\.tsv: empty file") as info:
        read_table(empty, fmt="criteo", schema=SCHEMA)
    assert info.value.reason == "empty_file"
    log = RejectsLog()
    assert read_table(empty, fmt="criteo", schema=SCHEMA, on_bad_rows="skip",
                      rejects=log).num_rows == 0
    assert log.counts == {"empty_file": 1}


@pytest.mark.parametrize("compress", [False, True])
def test_wrong_field_count_with_invalid_utf8_is_one_bad_row(write_lines, tmp_path, compress):
    # wrong field count and invalid UTF-8 together: pyarrow's handler could not decode such
    # a row (a printed traceback, then the parser stopped); now it is a bad row like any other
    lines: list[str | bytes] = []
    for i in range(1, 3001):
        if i in (5, 1200, 1201, 2999):
            lines.append(b"1\t\xff\t%d" % i)
        elif i in (7, 1203):
            lines.append(f"1\t{i}")  # an ordinary wrong-field-count row near them
        elif i == 1500:
            lines.append(f"0\t{i}\tbad\t3\ta\tb")
        else:
            lines.append(f"{i % 2}\t{i}\t\t7\tc\t")
    path = write_lines("u.tsv", lines)
    if compress:
        gz = tmp_path / "u.tsv.gz"
        gz.write_bytes(gzip.compress(path.read_bytes()))
        path = gz
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="criteo", schema=SCHEMA)
    assert (info.value.line, info.value.reason) == (5, "wrong_field_count")
    with RejectsLog(tmp_path / "r.jsonl") as log:
        tables = list(iter_tables(path, fmt="criteo", schema=SCHEMA, chunk_rows=100,
                                  on_bad_rows="skip", rejects=log))
    bad = [5, 7, 1200, 1201, 1203, 1500, 2999]
    out = [int(v) for t in tables for v in t["I1"].to_pylist()]
    assert out == [i for i in range(1, 3001) if i not in bad]
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == bad
    assert records[0]["raw"] == "1\t\\xff\t5"
    assert records[0]["message"] == "expected 6 fields, got 3"


def test_error_mode_reports_an_earlier_bad_row_before_an_unparseable_one(write_lines):
    for earlier, reason in (("1\t2", "wrong_field_count"), ("0\tx\t1\t1\ta\tb", "non_numeric")):
        path = write_lines("e.tsv", [GOOD, GOOD, earlier, GOOD, b"1\t\xff\t5", GOOD])
        with pytest.raises(BadInputError) as info:
            read_table(path, fmt="criteo", schema=SCHEMA)
        assert (info.value.line, info.value.reason) == (3, reason)


def test_wrong_field_count_with_invalid_utf8_is_skipped_in_csv_too(write_lines, tmp_path):
    path = write_lines("u.csv", ["label,I1,I2,I3,C1,C2", "1,1,2,3,a,b", b"1,\xff,5",
                                 b'0,"x\xfe\ny",2', "0,4,5,6,c,d"])
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="csv", schema=SCHEMA)
    assert (info.value.line, info.value.reason) == (3, "wrong_field_count")
    with RejectsLog(tmp_path / "r.jsonl") as log:
        table = read_table(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table["I1"].to_pylist() == [1.0, 4.0]
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"], r["raw"]) for r in records] == [
        (3, "wrong_field_count", "1,\\xff,5"), (4, "wrong_field_count", '0,"x\\xfe\ny",2')]


def test_predict_style_reading_keeps_every_row(write_lines):
    schema = SCHEMA.without_label()
    lines = ["1\t\t3\ta\t", "\t\t\t\tb", "4\t5\t6\t\t", "\t2\t\tz\tq"]
    path = write_lines("test.tsv", lines)
    table = read_table(path, fmt="criteo", schema=schema)
    assert table.num_rows == len(lines)
    assert table.column_names == ["I1", "I2", "I3", "C1", "C2"]
    assert table["C2"].to_pylist() == [None, "b", None, "q"]


def test_shards_are_read_in_sorted_order_and_errors_name_the_shard(write_lines, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in (2, 0, 1):
        (shards / f"part-{k}.tsv").write_text(
            "".join(f"{k % 2}\t{10 * k + i}\t\t\ta\tb\n" for i in range(3))
        )
    (shards / "_SUCCESS").write_text("")
    (shards / ".part-0.tsv.crc").write_text("junk")
    assert [p.name for p in list_shards(shards)] == ["part-0.tsv", "part-1.tsv", "part-2.tsv"]
    for source in (shards, str(shards / "part-*.tsv")):
        tables = list(iter_tables(source, fmt="criteo", schema=SCHEMA, chunk_rows=2))
        assert [t.num_rows for t in tables] == [2, 2, 2, 2, 1]
        assert [v for t in tables for v in t["I1"].to_pylist()] == [
            0, 1, 2, 10, 11, 12, 20, 21, 22]
    (shards / "part-1.tsv").write_text("1\t10\t\t\ta\tb\n0\toops\t\t\ta\tb\n")
    with pytest.raises(BadInputError) as info:
        read_table(shards, fmt="criteo", schema=SCHEMA)
    assert (info.value.file, info.value.line) == (str(shards / "part-1.tsv"), 2)
    (shards / "part-1.tsv").write_text("")
    log = RejectsLog()
    assert read_table(shards, fmt="criteo", schema=SCHEMA, on_bad_rows="skip",
                      rejects=log).num_rows == 6
    assert log.counts == {"empty_file": 1}


def test_missing_paths_and_bad_options_raise(tmp_path, write_lines):
    with pytest.raises(FileNotFoundError):
        list_shards(tmp_path / "nope.tsv")
    with pytest.raises(FileNotFoundError):
        list_shards(str(tmp_path / "*.parquet"))
    path = write_lines("a.tsv", [GOOD])
    for kwargs, error in [
        ({"fmt": "tsv"}, ValueError),
        ({"chunk_rows": 0}, ValueError),
        ({"chunk_rows": True}, ValueError),
        ({"on_bad_rows": "ignore"}, ValueError),
        ({"on_bad_rows": "skip"}, ValueError),  # skipping needs a RejectsLog
        ({"rejects": "r.jsonl"}, TypeError),
        ({"schema": SCHEMA.to_dict()}, TypeError),
    ]:
        options = {"fmt": "criteo", "schema": SCHEMA, **kwargs}
        with pytest.raises(error, match=next(iter(kwargs))):
            iter_tables(path, **options)
    with pytest.raises(ValueError, match="id column"):
        iter_tables(path, fmt="criteo", schema=TableSchema(label=None, dense=("a",),
                                                           categorical=(), id_column="id"))


def test_gzip_text_is_decompressed(tmp_path):
    path = tmp_path / "day_0.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("1\t1\t2\t3\ta\tb\n0\t\t\t\tc\td\n0\tbad\t1\t1\tc\td\n")
    with pytest.raises(BadInputError, match=r"day_0\.tsv\.gz line 3, column I1"):
        read_table(path, fmt="criteo", schema=SCHEMA)
    log = RejectsLog()
    assert read_table(path, fmt="criteo", schema=SCHEMA, on_bad_rows="skip",
                      rejects=log)["C1"].to_pylist() == ["a", "c"]


# ------------------------------------------------------------------------------------ CSV
def test_csv_header_selects_and_orders_columns(write_lines):
    path = write_lines("a.csv", [
        "C2,extra,I3,label,C1,I2,I1",
        'b,zzz,3,1,"x, y",2,1',
        ",,,0,,,",
    ])
    table = read_table(path, fmt="csv", schema=SCHEMA)
    assert table.column_names == list(SCHEMA.column_names)
    assert table.to_pylist()[0] == {"label": 1.0, "I1": 1.0, "I2": 2.0, "I3": 3.0,
                                    "C1": "x, y", "C2": "b"}
    assert table.to_pylist()[1]["C1"] is None


def test_csv_missing_column_is_an_error_naming_it(write_lines):
    path = write_lines("a.csv", ["label,I1,I2,C1,C2", "1,1,2,a,b"])
    with pytest.raises(BadInputError, match=r"a\.csv line 1: missing column\(s\) \['I3'\]"):
        read_table(path, fmt="csv", schema=SCHEMA)


def test_csv_line_numbers_count_the_header_and_quoted_line_breaks(write_lines, tmp_path):
    path = write_lines("q.csv", [
        "label,I1,I2,I3,C1,C2",   # 1
        "1,1,2,3,a,b",            # 2
        '0,1,2,3,"multi',         # 3  a quoted value over lines 3-4: a bad row
        'line",b',                # 4
        "1,1,2",                  # 5  too few fields
        "1,1,x,3,a,b",            # 6  non-numeric
        "0,4,5,6,c,d",            # 7
    ])
    with pytest.raises(BadInputError) as info:
        read_table(path, fmt="csv", schema=SCHEMA)
    assert (info.value.line, info.value.reason) == (3, "line_break_in_field")
    with RejectsLog(tmp_path / "r.jsonl") as log:
        table = read_table(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table["I1"].to_pylist() == [1.0, 4.0]
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [
        (3, "line_break_in_field"), (5, "wrong_field_count"), (6, "non_numeric")]


def test_csv_header_only_is_an_empty_file(write_lines):
    path = write_lines("h.csv", ["label,I1,I2,I3,C1,C2"])
    with pytest.raises(BadInputError, match="empty file"):
        read_table(path, fmt="csv", schema=SCHEMA)


def test_csv_id_column_passes_through_as_text(write_lines):
    schema = TableSchema(label=None, dense=("x",), categorical=("c",), id_column="id")
    path = write_lines("p.csv", ["id,x,c", "007,1,a", "8,,b"])
    table = read_table(path, fmt="csv", schema=schema)
    assert table.column_names == ["id", "x", "c"]
    assert table["id"].to_pylist() == ["007", "8"]  # exactly as written
    path = write_lines("p2.csv", ["id,x,c", "007,1,a", ",2,b"])
    with pytest.raises(BadInputError, match="line 3, column id: missing id"):
        read_table(path, fmt="csv", schema=schema)


# -------------------------------------------------------------------------------- Parquet
def _parquet(tmp_path: Path, columns: dict, name: str = "d.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, row_group_size=4)
    return path


def test_parquet_bad_rows_are_named_by_row_index(tmp_path):
    n = 12
    cols = {
        "label": pa.array([1, 0] * 6, pa.int64()),
        "I1": pa.array([float(i) for i in range(n)]),
        "I2": pa.array(list(range(n)), pa.int32()),
        "I3": pa.array([None] * n, pa.float64()),
        "C1": pa.array([f"v{i}" for i in range(n)]),
        "C2": pa.array(list(range(100, 100 + n)), pa.int64()),  # integer ids -> exact text
    }
    ok = read_table(_parquet(tmp_path, cols), fmt="parquet", schema=SCHEMA)
    assert ok.num_rows == n and ok["C2"].to_pylist()[:2] == ["100", "101"]
    assert ok.schema.types == [pa.float64()] * 4 + [pa.string()] * 2
    cols["I1"] = pa.array([float(i) if i != 9 else float("nan") for i in range(n)])
    cols["label"] = pa.array([1, 0, 1, None] + [0] * 8, pa.int64())
    path = _parquet(tmp_path, cols, "bad.parquet")
    with pytest.raises(BadInputError) as info:
        list(iter_tables(path, fmt="parquet", schema=SCHEMA, chunk_rows=4))
    assert str(info.value) == f"{path} row 3, column label: missing label"
    log = RejectsLog()
    table = read_table(path, fmt="parquet", schema=SCHEMA, on_bad_rows="skip", rejects=log)
    assert table.num_rows == n - 2
    assert log.counts == {"missing_label": 1, "non_finite": 1}


def test_parquet_column_problems_are_file_errors(tmp_path):
    base = {"label": [1], "I1": [1.0], "I2": [1.0], "I3": [1.0], "C1": ["a"]}
    with pytest.raises(BadInputError, match=r"missing column\(s\) \['C2'\]"):
        read_table(_parquet(tmp_path, base), fmt="parquet", schema=SCHEMA)
    with pytest.raises(BadInputError, match="C2.*floats"):
        read_table(_parquet(tmp_path, {**base, "C2": [1.5]}, "f.parquet"), fmt="parquet",
                   schema=SCHEMA)
    empty = pa.table({k: pa.array([], pa.float64()) for k in ("label", "I1", "I2", "I3")}
                     | {"C1": pa.array([], pa.string()), "C2": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "e.parquet")
    with pytest.raises(BadInputError, match="empty file"):
        read_table(tmp_path / "e.parquet", fmt="parquet", schema=SCHEMA)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(BadInputError, match="junk.parquet: not a Parquet file"):
        read_table(tmp_path / "junk.parquet", fmt="parquet", schema=SCHEMA)


# ------------------------------------------------------------------------------ real data
def test_real_criteo_head10k(criteo_dir):
    path = criteo_dir / "criteo_kaggle_head10k.tsv"
    lines = path.read_bytes().count(b"\n")
    tables = list(iter_tables(path, fmt="criteo", schema=criteo_schema(), chunk_rows=4096))
    table = pa.concat_tables(tables)
    assert table.num_rows == lines == 10_000
    assert [t.num_rows for t in tables] == [4096, 4096, 1808]
    assert table.schema.types == [pa.float64()] * 14 + [pa.string()] * 26
    assert set(table["label"].to_pylist()) == {0.0, 1.0}
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["label"], first["I1"], first["I5"], first["I12"]) == (0.0, 1.0, 1382.0, None)
    assert (first["C1"], first["C26"]) == ("68fd1e64", "9727dd16")
    assert table["C1"].null_count == 0 and table["I12"].null_count > 0


def test_real_criteo_sample200_csv(criteo_dir):
    path = criteo_dir / "criteo_sample200.csv"
    table = read_table(path, fmt="csv", schema=criteo_schema())
    assert table.num_rows == 200
    assert table.schema.types == [pa.float64()] * 14 + [pa.string()] * 26
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["I1"], first["I2"], first["I3"], first["I5"]) == (None, 3.0, 260.0, 17668.0)
    assert (first["C1"], first["C19"]) == ("05db9164", None)
