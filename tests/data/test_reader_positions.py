"""The readers' ``positions`` column (each row's physical line, or Parquet row index) and
``skip_label``: what prediction uses to keep one output line per input row."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import crossrank.data.text_reader as text_reader
from crossrank.data import RejectsLog, TableSchema, iter_tables
from crossrank.errors import BadInputError

SCHEMA = TableSchema(label="label", dense=("I1",), categorical=("C1",))


def _read(path, fmt, schema=SCHEMA, **kwargs):
    log = RejectsLog(path.with_suffix(".rejects"))
    tables = list(iter_tables(path, fmt=fmt, schema=schema, on_bad_rows="skip", rejects=log,
                              positions="at", **kwargs))
    log.close()
    rejects = [json.loads(x) for x in path.with_suffix(".rejects").read_text().splitlines()]
    return pa.concat_tables(tables) if tables else None, rejects


@pytest.mark.parametrize("block", [None, 256])
def test_text_positions_are_physical_lines_across_blocks_and_chunks(tmp_path, monkeypatch,
                                                                   block):
    if block is not None:  # pyarrow's blocks of 256 bytes: many batches, rejects between them
        monkeypatch.setattr(text_reader, "_MIN_BLOCK", block)
    lines, expected_rows, expected_rejects = ["label,I1,C1"], [], []
    for i in range(400):
        line = sum(1 + x.count("\n") for x in lines) + 1  # the physical line this row starts
        if i % 37 == 5:
            lines.append(f'1,{i},"a\nb"')  # one row over two lines
            expected_rejects.append(line)
        elif i % 41 == 7:
            lines.append(f"1,{i}")  # a field short
            expected_rejects.append(line)
        elif i % 43 == 9:
            lines.append(f"1,x{i},c")  # not a number
            expected_rejects.append(line)
        else:
            lines.append(f"{i % 2},{i},c{i % 3}")
            expected_rows.append((line, float(i)))
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    table, rejects = _read(path, "csv", chunk_rows=7)
    assert list(zip(table["at"].to_pylist(), table["I1"].to_pylist())) == expected_rows
    assert [r["line"] for r in rejects] == expected_rejects
    assert table.column_names == ["label", "I1", "C1", "at"]


def test_parquet_positions_are_row_indices(tmp_path):
    path = tmp_path / "d.parquet"
    values = [float(i) for i in range(30)]
    values[4] = float("nan")
    pq.write_table(pa.table({"label": [1.0] * 30, "I1": values, "C1": ["c"] * 30}), path,
                   row_group_size=8)
    table, rejects = _read(path, "parquet", chunk_rows=5)
    assert table["at"].to_pylist() == [i for i in range(30) if i != 4]
    assert [r["row"] for r in rejects] == [4]


def test_skip_label_never_reads_it_in_any_format(tmp_path):
    rows = [("abc", 1.0, "x"), ("", 2.0, "y"), ("7", 3.0, "z")]
    (tmp_path / "d.tsv").write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
    (tmp_path / "d.csv").write_text("label,I1,C1\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    pq.write_table(pa.table({"label": ["abc", None, "7"], "I1": [1.0, 2.0, 3.0],
                             "C1": ["x", "y", "z"]}), tmp_path / "d.parquet")
    for name, fmt in (("d.tsv", "criteo"), ("d.csv", "csv"), ("d.parquet", "parquet")):
        with pytest.raises(BadInputError):  # read as a label, it is not one
            list(iter_tables(tmp_path / name, fmt=fmt, schema=SCHEMA))
        (table,) = iter_tables(tmp_path / name, fmt=fmt, schema=SCHEMA, skip_label=True)
        assert table.to_pydict() == {"I1": [1.0, 2.0, 3.0], "C1": ["x", "y", "z"]}, name
    with pytest.raises(ValueError, match="skip_label=True needs the schema's label"):
        iter_tables(tmp_path / "d.csv", fmt="csv", schema=TableSchema(
            label=None, dense=("I1",), categorical=("C1",)), skip_label=True)
    with pytest.raises(ValueError, match="positions must not name a column"):
        iter_tables(tmp_path / "d.csv", fmt="csv", schema=SCHEMA, positions="I1")


@pytest.mark.parametrize("text", [b"label,I1,C1\n", b"label,I1,C1", b"label,I1,C1\r\n"])
def test_a_header_alone_is_an_empty_file(tmp_path, text):
    path = tmp_path / "h.csv"
    path.write_bytes(text)
    log = RejectsLog()
    assert list(iter_tables(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip",
                            rejects=log)) == []
    assert log.counts == {"empty_file": 1}
    # a blank line after it is a row (a bad one), not nothing
    path.write_bytes(text.rstrip(b"\r\n") + b"\n\n")
    log = RejectsLog()
    assert list(iter_tables(path, fmt="csv", schema=SCHEMA, on_bad_rows="skip",
                            rejects=log)) == []
    assert log.total == 1 and "empty_file" not in log.counts


@pytest.mark.parametrize("fmt", ["csv", "criteo"])
def test_a_record_longer_than_the_fast_block_reads_the_file_again_as_one_read(tmp_path,
                                                                              monkeypatch, fmt):
    # blocks of 4 KiB first: the 20 KB record stops that parse after several batches were
    # handed on (bad rows among them), and the file is read again with the big block
    sep = "," if fmt == "csv" else "\t"
    lines = ["label,I1,C1"] if fmt == "csv" else []
    for i in range(3000):
        if i == 2000:
            lines.append(sep.join(["1", str(i), "L" * 20_000]))
        elif i % 53 == 3:
            lines.append(sep.join(["1", str(i)]))  # a field short
        elif i % 61 == 8:
            lines.append(sep.join(["0", f"x{i}", "c"]))  # not a number
        else:
            lines.append(sep.join([str(i % 2), str(i), f"c{i % 5}"]))
    path = tmp_path / f"d.{'csv' if fmt == 'csv' else 'tsv'}"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(text_reader, "_FAST_BLOCK", 1 << 30)  # the big block only
    whole, whole_rejects = _read(path, fmt, chunk_rows=64)
    monkeypatch.setattr(text_reader, "_FAST_BLOCK", 4096)
    batches = []
    real = text_reader.TextFile._batch

    def counting(self, batch, delivered):
        batches.append((self.block_size, batch.num_rows))
        return real(self, batch, delivered)

    monkeypatch.setattr(text_reader.TextFile, "_batch", counting)
    again, again_rejects = _read(path, fmt, chunk_rows=64)
    assert sum(1 for size, _ in batches if size == 4096) > 3  # several handed on, then again
    assert max(n for _, n in batches) <= 64  # a block of ~400 rows is checked a chunk at a time
    assert any(size > 4096 for size, _ in batches)
    assert again.equals(whole) and again_rejects == whole_rejects
    bad = sum(1 for i in range(3000) if i != 2000 and (i % 53 == 3 or i % 61 == 8))
    assert len(whole_rejects) == bad and again.num_rows == 3000 - bad
    assert len(again["C1"][again["I1"].to_pylist().index(2000.0)].as_py()) == 20_000


def test_small_blocks_are_checked_together_a_chunk_at_a_time(tmp_path, monkeypatch):
    # blocks of 256 bytes (~25 rows): the checks run on 100-row chunks made of several
    # blocks, and a block's rows beyond a chunk wait for the next one
    monkeypatch.setattr(text_reader, "_MIN_BLOCK", 256)
    path = tmp_path / "d.tsv"
    path.write_text("".join(f"{i % 2}\t{i}\tc{i % 3}\n" for i in range(1234)))
    sizes = []
    real = text_reader.TextFile._batch

    def counting(self, batch, delivered):
        sizes.append(batch.num_rows)
        return real(self, batch, delivered)

    monkeypatch.setattr(text_reader.TextFile, "_batch", counting)
    table, rejects = _read(path, "criteo", chunk_rows=100)
    assert sizes == [100] * 12 + [34] and rejects == []
    assert table["I1"].to_pylist() == [float(i) for i in range(1234)]
    assert table["at"].to_pylist() == list(range(1, 1235))
