"""`crossrank predict` writes exactly one line per input row, in input order, file after file:
``[id,] score, status``; a row that cannot be scored keeps its place with its reject reason.
Real files with bad rows, damaged streams and Parquet row groups; the label is never read."""

import csv
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from crossrank.cli import main
from crossrank.data import write_default_synthetic
from tolerances import TOLERANCES

ROWS = 200


def _csv_lines(n=ROWS, first=0):
    return [f"r{i},{int(i % 3 == 0)},{i % 7},c{i % 5}" for i in range(first, first + n)]


def _write(path, lines, header="row_id,label,price,city"):
    path.write_text("".join(f"{line}\n" for line in ([header] if header else []) + lines))
    return path


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    """A DCN trained on a CSV with an id column: label, one dense, one categorical."""
    root = tmp_path_factory.mktemp("csv_model")
    data = _write(root / "train.csv", _csv_lines(300))
    assert main(["train", "--data", str(data), "--label", "label", "--dense", "price",
                 "--categorical", "city", "--id-column", "row_id", "--epochs", "1",
                 "--no-progress", "--out", str(root / "m"), "--model-option",
                 "deep_layers=[8]"]) == 0
    return root / "m"


@pytest.fixture(scope="module")
def criteo_model(tmp_path_factory):
    """A small DCN trained on synthetic Criteo TSV (no header, no id; label first)."""
    root = tmp_path_factory.mktemp("criteo_model")
    write_default_synthetic(root / "train.tsv", 2000, seed=1)
    write_default_synthetic(root / "test.tsv", 1000, seed=2)
    assert main(["train", "--data", str(root / "train.tsv"), "--epochs", "1", "--no-progress",
                 "--out", str(root / "m"), "--model-option", "deep_layers=[8]",
                 "--model-option", "cross.rank=2", "--embedding-dim", "4"]) == 0
    return root / "m"


def _predict(model, data, out, *args):
    assert main(["predict", str(model), "--data", str(data), "--out", str(out), *args]) == 0
    rows = list(csv.reader(out.open()))
    return rows[0], rows[1:]


def _same(got, expected):
    """Lines alike: ids and statuses exactly, scores up to float32 rounding (a row's score
    can move by an ulp with the rows batched beside it)."""
    rtol, atol = TOLERANCES[torch.float32]
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a[:-2] + a[-1:] == b[:-2] + b[-1:], i
        assert (a[-2] == b[-2] == "") or float(a[-2]) == pytest.approx(float(b[-2]), rel=rtol,
                                                                        abs=atol), i


def _skip(tmp_path):
    return ["--on-bad-rows", "skip", "--rejects", str(tmp_path / "rejects.jsonl")]


def test_skip_keeps_one_line_per_row_with_the_reject_reason(csv_model, tmp_path, capsys):
    clean = _write(tmp_path / "clean.csv", _csv_lines())
    _, expected = _predict(csv_model, clean, tmp_path / "clean_scores.csv")
    lines = _csv_lines()
    lines[50] = "r50,1,abc,c0"  # non-numeric price
    lines[120] = "r120,0,3"  # a field short
    _, got = _predict(csv_model, _write(tmp_path / "bad.csv", lines), tmp_path / "s.csv",
                      *_skip(tmp_path))
    assert len(got) == ROWS
    assert got[50] == ["", "", "non_numeric"] and got[120] == ["", "", "wrong_field_count"]
    keep = [i for i in range(ROWS) if i not in (50, 120)]
    _same([got[i] for i in keep], [expected[i] for i in keep])
    assert "wrote 200 rows to" in capsys.readouterr().out
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(52, "non_numeric"),
                                                           (122, "wrong_field_count")]


def test_the_label_is_never_read(csv_model, criteo_model, tmp_path):
    _, expected = _predict(csv_model, _write(tmp_path / "c.csv", _csv_lines()),
                           tmp_path / "e.csv")
    # labels that are not numbers, or missing, or not 0/1: the rows are scored all the same
    lines = [f"r{i},{('abc', '', '7')[i % 3]},{i % 7},c{i % 5}" for i in range(ROWS)]
    header, got = _predict(csv_model, _write(tmp_path / "l.csv", lines), tmp_path / "s.csv")
    assert header == ["row_id", "score", "status"]
    _same(got, expected)
    # Criteo TSV: the label is the first field, split off and never checked
    test = (criteo_model.parent / "test.tsv").read_text().splitlines()[:300]
    unlabelled = _write(tmp_path / "u.tsv", [t.split("\t", 1)[1] for t in test], header=None)
    _, expected = _predict(criteo_model, unlabelled, tmp_path / "u.csv", "--format", "criteo")
    garbage = _write(tmp_path / "g.tsv", ["x\t" + t.split("\t", 1)[1] for t in test], header=None)
    _same(_predict(criteo_model, garbage, tmp_path / "g.csv")[1], expected)


def test_rows_over_several_lines_and_blank_lines_keep_their_place(csv_model, tmp_path):
    lines = _csv_lines(10)
    lines[3] = 'r3,0,2,"c\n1"'  # a quoted line break: one row over two lines
    lines[5] = ""  # a blank line
    lines[7] = ",,,"  # every field empty
    lines[8] = "r8,1"  # a field short
    header, got = _predict(csv_model, _write(tmp_path / "d.csv", lines), tmp_path / "s.csv",
                           *_skip(tmp_path))
    assert header == ["row_id", "score", "status"]
    assert [r[2] for r in got] == ["ok"] * 3 + ["line_break_in_field", "ok", "blank_row", "ok",
                                                "blank_row", "wrong_field_count", "ok"]
    assert [r[0] for r in got] == ["r0", "r1", "r2", "", "r4", "", "r6", "", "", "r9"]
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    # the file's physical lines: the header is line 1, row 3 takes lines 5 and 6
    assert [r["line"] for r in rejects] == [5, 8, 10, 11]


def test_shards_are_placed_file_by_file(csv_model, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    first, second = _csv_lines(30), _csv_lines(20, first=30)
    first[0], second[19] = "r0,1,x,c0", "r49,1"
    _write(shards / "part-0.csv", first)
    _write(shards / "part-1.csv", second)
    _, got = _predict(csv_model, shards, tmp_path / "s.csv", *_skip(tmp_path))
    assert len(got) == 50
    assert [r[0] for r in got] == [""] + [f"r{i}" for i in range(1, 49)] + [""]
    assert (got[0][2], got[49][2]) == ("non_numeric", "wrong_field_count")


def test_a_text_file_cut_short_ends_with_one_line_for_its_unread_rest(criteo_model, tmp_path):
    test = (criteo_model.parent / "test.tsv").read_text().splitlines()
    shards = tmp_path / "shards"
    shards.mkdir()
    whole = gzip.compress("".join(f"{t}\n" for t in test).encode())
    (shards / "a.tsv.gz").write_bytes(whole[:-20])  # the trailer and a little data lost
    _write(shards / "b.tsv", test[:5], header=None)
    _, expected = _predict(criteo_model, criteo_model.parent / "test.tsv", tmp_path / "e.csv")
    _, got = _predict(criteo_model, shards, tmp_path / "s.csv", "--format", "criteo",
                      *_skip(tmp_path))
    kept = next(i for i, r in enumerate(got) if r[1] != "ok")
    assert 500 < kept < len(test)
    _same(got[:kept], expected[:kept])  # the rows before the damage, each in its place
    assert got[kept] == ["", "rest_of_file_unread"]  # one line for the rest, however long
    _same(got[kept + 1:], expected[:5])  # the next file, from its first row


def test_parquet_bad_rows_and_a_damaged_row_group_keep_one_line_per_row(csv_model, tmp_path):
    n = 40_000
    price = [float(i) for i in range(n)]
    price[7], price[25_000] = float("nan"), float("inf")
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"price": price, "row_id": [f"r{i}" for i in range(n)],
                             "label": [0.0] * n, "city": [f"c{i % 5}" for i in range(n)]}),
                   path, row_group_size=10_000)
    _, clean = _predict(csv_model, path, tmp_path / "clean.csv", *_skip(tmp_path))
    assert len(clean) == n
    assert clean[7] == clean[25_000] == ["", "", "non_finite"]
    page = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[page + 20:page + 60] = b"\xff" * 40  # row group 2: rows 20,000..29,999
    path.write_bytes(bytes(data))
    _, got = _predict(csv_model, path, tmp_path / "s.csv", *_skip(tmp_path))
    assert len(got) == n  # the footer counts the unread rows: one line each
    assert got[20_000:30_000] == [["", "", "bad_file"]] * 10_000
    _same(got[:20_000], clean[:20_000])
    _same(got[30_000:], clean[30_000:])


def test_input_without_rows_writes_the_header(csv_model, tmp_path, capsys):
    out = tmp_path / "s.csv"
    _predict(csv_model, _write(tmp_path / "h.csv", []), out, *_skip(tmp_path))
    assert out.read_text() == "row_id,score,status\n"
    assert "wrote 0 rows" in capsys.readouterr().out


def test_a_failed_predict_leaves_no_file(csv_model, tmp_path):
    lines = _csv_lines()
    lines[150] = "r150,1,abc,c0"
    assert main(["predict", str(csv_model), "--data", str(_write(tmp_path / "b.csv", lines)),
                 "--out", str(tmp_path / "s.csv")]) == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "b.csv"]


def test_predict_help_states_the_one_line_per_row_rule(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one CSV line per input row, in input order" in text
    assert "rest_of_file_unread" in text and "The label is never read" in text


def test_evaluate_says_how_many_rows_it_skipped(csv_model, tmp_path, capsys):
    lines = _csv_lines()
    lines[10], lines[11] = "r10,1,abc,c0", "r11,0"
    capsys.readouterr()
    assert main(["evaluate", str(csv_model), "--data", str(_write(tmp_path / "b.csv", lines)),
                 *_skip(tmp_path)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index("{"):])
    assert (metrics["rows"], metrics["rows_read"], metrics["rows_skipped"]) == (198, 200, 2)
    assert metrics["unread_file_parts"] == 0
