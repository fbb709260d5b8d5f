"""encode_stream: the tables of a stream encoded on threads, handed on in order, errors in
their place."""

import importlib

import numpy as np
import pyarrow as pa
import pytest

from crossrank.data import FeatureEncoder, TableSchema, encode_stream
from crossrank.data.multi_valued import parse_multi_valued

SCHEMA = TableSchema(label="y", dense=("n",), categorical=("c",),
                     multi_valued=(parse_multi_valued("g:|"),))


def _tables(count, rows, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        ids = rng.integers(0, 50, size=rows)
        out.append(pa.table({
            "y": rng.integers(0, 2, size=rows).astype(float),
            "n": rng.random(rows),
            "c": [f"v{x}" for x in ids],
            "g": ["|".join(f"t{(x + j) % 7}" for j in range(x % 4)) for x in ids],
            "k": [k] * rows,  # which table a row came from
        }))
    return out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_stream_equals_transforming_each_table_in_order(workers):
    tables = _tables(9, 37)
    encoder = FeatureEncoder(SCHEMA, min_count=2).fit(tables[:3])
    got = list(encode_stream(iter(tables), encoder, workers=workers))
    assert [t["k"][0].as_py() for t, _ in got] == list(range(9))
    for (table, batch), original in zip(got, tables, strict=True):
        assert table is original
        want = encoder.transform(original)
        np.testing.assert_array_equal(batch.sparse, want.sparse)
        np.testing.assert_array_equal(batch.dense, want.dense)
        np.testing.assert_array_equal(batch.label, want.label)
        for (v, o), (wv, wo) in zip(batch.multi_valued, want.multi_valued, strict=True):
            np.testing.assert_array_equal(v, wv)
            np.testing.assert_array_equal(o, wo)


def test_an_error_of_the_stream_comes_after_every_table_before_it():
    tables = _tables(4, 10)
    encoder = FeatureEncoder(SCHEMA).fit(tables)

    def failing():
        yield from tables[:3]
        raise ValueError("bad row at line 31")

    seen = []
    with pytest.raises(ValueError, match="line 31"):
        for table, _ in encode_stream(failing(), encoder, workers=2):
            seen.append(table["k"][0].as_py())
    assert seen == [0, 1, 2]


def test_an_encoding_error_is_raised_in_its_place():
    tables = _tables(3, 10)
    encoder = FeatureEncoder(SCHEMA).fit(tables)
    broken = tables[1].drop_columns(["c"])  # the categorical column is missing
    seen = []
    with pytest.raises(ValueError, match="no column .c."):
        for table, _ in encode_stream([tables[0], broken, tables[2]], encoder, workers=2):
            seen.append(table["k"][0].as_py())
    assert seen == [0]


def test_one_chunk_is_encoded_without_sampling_the_machine(monkeypatch):
    module = importlib.import_module("crossrank.data.encode_stream")  # the package's
    # attribute of that name is the function
    tables = _tables(3, 10)
    encoder = FeatureEncoder(SCHEMA).fit(tables)
    calls = []
    monkeypatch.setattr(module, "encoding_workers", lambda: calls.append(1) or 2)
    assert len(list(encode_stream(tables[:1], encoder))) == 1 and calls == []
    assert len(list(encode_stream(iter(tables), encoder))) == 3 and calls == [1]


def test_with_the_default_workers_a_second_chunk_error_follows_the_first():
    tables = _tables(2, 10)
    encoder = FeatureEncoder(SCHEMA).fit(tables)

    def failing():
        yield tables[0]
        raise ValueError("bad row at line 12")

    seen = []
    with pytest.raises(ValueError, match="line 12"):
        for table, _ in encode_stream(failing(), encoder):
            seen.append(table["k"][0].as_py())
    assert seen == [0]


@pytest.mark.parametrize("workers", [1, 2])
def test_wide_id_matrices_are_cut_into_slices_under_the_byte_limit(monkeypatch, workers):
    module = importlib.import_module("crossrank.data.encode_stream")
    width = 1 + 50  # one categorical field and the padded multi-valued one
    monkeypatch.setattr(module, "_MIN_ROWS", 4)
    monkeypatch.setattr(module, "_MAX_IDS_BYTES", 8 * width * 16)  # 16 rows' ids
    tables = _tables(3, 37)
    encoder = FeatureEncoder(SCHEMA, min_count=2).fit(tables)
    got = list(encode_stream(iter(tables), encoder, workers=workers))
    assert [t.num_rows for t, _ in got] == [16, 16, 5] * 3
    for table, batch in got:
        assert batch.sparse.shape == (table.num_rows, width)
        assert batch.sparse.nbytes <= 8 * width * 16
        np.testing.assert_array_equal(batch.sparse, encoder.transform(table).sparse)
    whole = encoder.transform(pa.concat_tables(tables))
    np.testing.assert_array_equal(np.concatenate([b.sparse for _, b in got]), whole.sparse)
    # without padding (the cache's stream) the ids are 8 bytes a row: no cut
    assert [t.num_rows for t, _ in encode_stream(iter(tables), encoder, workers=workers,
                                                 pad_lists=False)] == [37] * 3
