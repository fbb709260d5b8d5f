"""The encode pass replays the fit pass's parsed tables: the same encoder and cache as two
reads of the file, one parse instead of two, and a pass that did not finish keeps nothing."""

import numpy as np
import pyarrow as pa
import pytest

import crossrank.data.prepare as prepare_module
from crossrank.data import make_synthetic_clicks, write_table
from crossrank.data.prepare import EncoderOptions, prepare_data
from crossrank.data.replay import ReplayedTables
from crossrank.data.schema import criteo_schema


def _prepare(tmp_path, name, data, monkeypatch, *, keep_mb, on_bad_rows="error"):
    reads = []
    real = prepare_module.iter_tables

    def counted(*args, **kwargs):
        reads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "iter_tables", counted)
    out = tmp_path / name
    encoder, dataset = prepare_data(
        data=str(data), fmt="criteo", schema=criteo_schema(),
        options=EncoderOptions(min_count=2), out=out, on_bad_rows=on_bad_rows,
        rejects_path=None, resume=False, log=print, keep_parsed_mb=keep_mb)
    return encoder, dataset, out, len(reads)


def test_one_parse_gives_the_encoder_and_cache_of_two(tmp_path, monkeypatch):
    data = tmp_path / "clicks.tsv"
    write_table(make_synthetic_clicks(3000, seed=4, vocab_size=[50] * 26), data, fmt="criteo")
    once = _prepare(tmp_path, "once", data, monkeypatch, keep_mb=64)
    twice = _prepare(tmp_path, "twice", data, monkeypatch, keep_mb=0)
    skipping = _prepare(tmp_path, "skip", data, monkeypatch, keep_mb=64, on_bad_rows="skip")
    assert (once[3], twice[3], skipping[3]) == (1, 2, 2)
    for name in ("encoder.json",):
        assert (once[2] / "encoder" / name).read_bytes() == \
            (twice[2] / "encoder" / name).read_bytes()
    for a, b in zip(once[1].iter_batches(1000, shuffle=False, seed=0),
                    twice[1].iter_batches(1000, shuffle=False, seed=0), strict=True):
        for x, y in zip(a, b, strict=True):
            assert (x is None and y is None) or np.array_equal(np.asarray(x), np.asarray(y))
    assert len(once[1]) == len(twice[1]) == 3000


def _source(reads, rows=4):
    def read():
        reads.append(1)
        for i in range(rows):
            yield pa.table({"x": [i] * 10})
    return read


def test_a_pass_that_stops_early_or_fails_keeps_nothing():
    reads = []
    tables = ReplayedTables(_source(reads))
    for _ in tables:
        break  # stopped after one table
    assert [t["x"][0].as_py() for t in tables] == [0, 1, 2, 3]
    assert len(reads) == 2  # read again, whole

    def failing():
        reads.append(1)
        yield pa.table({"x": [0]})
        raise ValueError("bad row")

    broken = ReplayedTables(failing)
    with pytest.raises(ValueError, match="bad row"):
        list(broken)
    with pytest.raises(ValueError, match="bad row"):  # not replayed as if it were whole
        list(broken)


def test_a_replay_is_used_once_and_the_budget_counts_bytes():
    reads = []
    table_bytes = pa.table({"x": [0] * 10}).nbytes
    fits = ReplayedTables(_source(reads), budget=4 * table_bytes)
    passes = [[t["x"][0].as_py() for t in fits] for _ in range(3)]
    assert passes == [[0, 1, 2, 3]] * 3
    assert len(reads) == 2  # read, replay, read
    over = ReplayedTables(_source(reads), budget=4 * table_bytes - 1)
    list(over), list(over)
    assert len(reads) == 4
