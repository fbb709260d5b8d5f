"""Multi-valued fields: spec strings, the encoding rules, readers, bad rows and the jagged cache."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossrank.data import (
    BadInputError,
    EncodedDataset,
    FeatureEncoder,
    RejectsLog,
    TableSchema,
    read_table,
)
from crossrank.data.cache import concatenate_caches, encode_to_cache
from crossrank.data.multi_valued import (
    MAX_LIST_LENGTH,
    MultiValuedSpec,
    join_padded,
    pad_lists,
    parse_multi_valued,
    split_lists,
)


def _schema(*specs: str) -> TableSchema:
    return TableSchema(label="y", dense=("x",), categorical=("c",),
                       multi_valued=tuple(parse_multi_valued(s) for s in specs))


def test_spec_strings_round_trip_and_bad_ones_are_named():
    s = parse_multi_valued("tags:comma:pooling=max:max_length=7:keep=last:min_count=2")
    assert (s.separator, s.pooling, s.max_length, s.keep, s.min_count) == (",", "max", 7,
                                                                            "last", 2)
    assert parse_multi_valued(s.to_text()) == s
    assert MultiValuedSpec.from_dict(s.to_dict()) == s
    for text, match in [("genres", "NAME:SEPARATOR"), ("g:|:pool=sum", "not KEY=VALUE"),
                        ("g:|:pooling=median", "pooling must be one of"),
                        ("g:|:max_length=0", "max_length must be an int >= 1"),
                        (f"g:|:max_length={MAX_LIST_LENGTH + 1}", "max_length"),
                        ("g:|:keep=middle", "keep must be"), ("g:|:max_length=x", "integer"),
                        ("g:|:hash_buckets=8:min_count=2", "hash_buckets replaces")]:
        with pytest.raises(ValueError, match=match):
            parse_multi_valued(text)


def test_split_keeps_duplicates_drops_empty_elements_and_cuts_the_chosen_end():
    values = pa.array(["a|b|c|d", "x|x", None, "", "|b||", "solo"])
    first, n1 = split_lists(values, MultiValuedSpec("g", max_length=3))
    last, n2 = split_lists(values, MultiValuedSpec("g", max_length=3, keep="last"))
    assert n1.tolist() == n2.tolist() == [3, 2, 0, 0, 1, 1]
    assert first.to_pylist() == ["a", "b", "c", "x", "x", "b", "solo"]
    assert last.to_pylist() == ["b", "c", "d", "x", "x", "b", "solo"]


def test_encoding_rules_vocabulary_min_count_oov_missing_and_hashing():
    s = _schema("g:|:min_count=2")
    train = pa.table({"y": [1.0, 0.0, 1.0], "x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"],
                      "g": ["Drama|Comedy|Drama", "Comedy|Horror", None]})
    enc = FeatureEncoder(s).fit([train])
    assert enc.lists.sizes == (4,)  # missing, OOV, Comedy and Drama (Horror seen once)
    test = pa.table({"x": [1.0, 1.0, 1.0, 1.0], "c": ["a"] * 4,
                     "g": ["Drama|Drama", "", None, "Horror|Western|Comedy"]})
    batch = enc.transform(test)
    values, offsets = batch.multi_valued[0]
    # Comedy and Drama are seen twice: ties broken by value, so Comedy is 2 and Drama 3
    assert values.tolist() == [3, 3, 0, 0, 1, 1, 2]
    assert offsets.tolist() == [0, 2, 3, 4, 7]
    assert batch.sparse[:, 1:].tolist()[0][:3] == [3, 3, -1]  # padded to max_length
    assert batch.sparse.shape == (4, 1 + 50)
    hashed = FeatureEncoder(_schema("g:|:hash_buckets=16")).fit([train])
    assert hashed.lists.sizes == (17,)
    hv, ho = hashed.transform(test).multi_valued[0]
    assert ho.tolist() == [0, 2, 3, 4, 7] and hv[0] == hv[1]
    assert hv[2] == hv[3] == 0 and all(1 <= v <= 16 for v in hv[[0, 1, 4, 5, 6]])


def test_encoder_saves_and_loads_its_vocabularies(tmp_path):
    s = _schema("g:pipe:keep=last:max_length=2", "h:space")
    t = pa.table({"y": [1.0, 0.0], "x": [1.0, 2.0], "c": ["a", "b"],
                  "g": ["p|q|r", "q"], "h": ["1 2 2", None]})
    enc = FeatureEncoder(s).fit([t])
    enc.save(tmp_path / "enc")
    again = FeatureEncoder.load(tmp_path / "enc")
    np.testing.assert_array_equal(again.transform(t).sparse, enc.transform(t).sparse)
    assert FeatureEncoder.from_dict(enc.to_dict()).lists.sizes == enc.lists.sizes == (4, 4)
    assert again.schema == s


def test_csv_and_parquet_lists_read_and_encode_alike(tmp_path):
    (tmp_path / "a.csv").write_text("y,x,c,g\n1,1,a,7|8|7\n0,2,b,\n1,3,a,9\n")
    pq.write_table(pa.table({"y": [1, 0, 1], "x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"],
                             "g": pa.array([[7, 8, 7], [], [9]], pa.list_(pa.int64()))}),
                   tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": [1, 0, 1], "x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"],
                             "g": pa.array([["7", "8", "7"], None, ["9"]])}),
                   tmp_path / "b.parquet")
    s = _schema("g:|")
    tables = [read_table(tmp_path / n, fmt=f, schema=s)
              for n, f in (("a.csv", "csv"), ("a.parquet", "parquet"), ("b.parquet", "parquet"))]
    enc = FeatureEncoder(s).fit(tables[:1])
    encoded = [enc.transform(t).sparse for t in tables]
    np.testing.assert_array_equal(encoded[0], encoded[1])
    np.testing.assert_array_equal(encoded[0], encoded[2])


def test_a_list_where_a_scalar_is_expected_or_of_floats_is_a_clear_error(tmp_path):
    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"y": [1, 0], "x": [1.0, 2.0], "c": [["a"], ["b"]],
                             "g": pa.array([[1.5], [2.5]])}), path)
    with pytest.raises(BadInputError, match="has type list<.*>; a categorical column"):
        read_table(path, fmt="parquet", schema=TableSchema("y", ("x",), ("c",)))
    s = TableSchema("y", ("x",), (), multi_valued=(parse_multi_valued("g:|"),))
    with pytest.raises(BadInputError, match="multi-valued list must hold integers or text"):
        read_table(path, fmt="parquet", schema=s)


def test_a_list_over_the_hard_limit_is_a_bad_row_with_its_place(tmp_path):
    long = "|".join(["a"] * (MAX_LIST_LENGTH + 1))
    (tmp_path / "a.csv").write_text(f"y,x,c,g\n1,1,a,a|b\n0,2,b,{long}\n1,3,a,\n")
    s = _schema("g:|")
    with pytest.raises(BadInputError, match="more than 10,000 elements") as info:
        read_table(tmp_path / "a.csv", fmt="csv", schema=s)
    assert (info.value.line, info.value.column, info.value.reason) == (3, "g", "list_too_long")
    log = RejectsLog()
    table = read_table(tmp_path / "a.csv", fmt="csv", schema=s, on_bad_rows="skip",
                       rejects=log)
    assert table.num_rows == 2 and log.counts == {"list_too_long": 1}


def test_the_cache_stores_jagged_lists_and_batches_pad_them(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    words = np.array([f"w{i}" for i in range(40)])
    g = ["|".join(rng.choice(words, rng.integers(0, 9))) for _ in range(n)]
    t = pa.table({"y": rng.integers(0, 2, n).astype(float), "x": rng.random(n),
                  "c": rng.choice(["a", "b"], n), "g": g})
    s = _schema("g:|:max_length=6:keep=last")
    enc = FeatureEncoder(s).fit([t])
    whole = enc.transform(t).sparse
    ds = encode_to_cache([t.slice(0, 120), t.slice(120)], enc, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if "multi" in p.name) == \
        ["multi0.offsets.npy", "multi0.values.npy"]
    assert ds.sparse.shape == (n, 1)  # the cache's sparse file: the categorical ids only
    # every epoch order, in memory and from the cache, pads the same rows the encoder does
    memory = EncodedDataset.from_batch(enc.transform(t))
    for source in (ds, ds.with_window_shuffle(block_rows=16, window_blocks=2), memory):
        seen = {}
        for _, sparse, _label, _weight in source.iter_batches(32, shuffle=True, seed=3):
            for row in sparse.numpy():
                seen.setdefault(tuple(row), 0)
                seen[tuple(row)] += 1
        expected = {}
        for row in whole:
            expected[tuple(row)] = expected.get(tuple(row), 0) + 1
        assert seen == expected
    # resume: positions start:stop of the order are the same rows
    rows = [b[1] for b in ds.iter_batches(50, shuffle=True, seed=1)]
    later = [b[1] for b in ds.iter_batches(50, shuffle=True, seed=1, start=100)]
    assert all((a == b).all() for a, b in zip(rows[2:], later, strict=True))
    # a data-parallel rank's share of each global batch is its rows of that batch
    shares = [list(ds.iter_shares(64, shuffle=True, seed=2, rank=r, world_size=3))
              for r in range(3)]
    for k, (_, whole_batch, _, _) in enumerate(ds.iter_batches(64, shuffle=True, seed=2)):
        parts = [shares[r][k][1][1] for r in range(3) if shares[r][k][0] > 0]
        assert (np.concatenate(parts) == whole_batch.numpy()).all()
    # caches of consecutive parts join into the cache of the whole
    encode_to_cache([t.slice(0, 100)], enc, tmp_path / "p0")
    encode_to_cache([t.slice(100)], enc, tmp_path / "p1")
    joined = concatenate_caches([tmp_path / "p0", tmp_path / "p1"], tmp_path / "joined")
    batches = [b[1].numpy() for b in joined.iter_batches(n, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(batches), whole)
    for name in ("multi0.values.npy", "multi0.offsets.npy"):
        assert (tmp_path / "joined" / name).read_bytes() == (tmp_path / "cache" / name).read_bytes()


def test_pad_lists_raises_on_a_row_wider_than_its_width():
    with pytest.raises(ValueError, match="more than the width 1"):
        pad_lists(np.array([1, 2]), np.array([0, 2]), None, 1)


@pytest.mark.parametrize("seed", range(3))
def test_join_padded_equals_a_loop_over_rows(seed):
    """Two jagged fields (lengths 0..width) padded after the categorical ids, for every row and
    for a random selection of rows (repeats and any order), against an explicit loop."""
    rng = np.random.default_rng(seed)
    n, widths = int(rng.integers(0, 30)), (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    sparse = rng.integers(0, 1000, (n, 3))
    bags = []
    for w in widths:
        lengths = rng.integers(0, w + 1, n)
        offsets = np.concatenate([[0], np.cumsum(lengths)]) + 4  # a slice of a bigger field
        values = np.concatenate([rng.integers(2, 50, 4), rng.integers(2, 50, int(lengths.sum()))])
        bags.append((values, offsets))
    for rows in (None, rng.integers(0, max(n, 1), int(rng.integers(0, 10))) if n else None):
        picked = range(n) if rows is None else rows
        expected = []
        for i in picked:
            line = list(sparse[i])
            for (values, offsets), w in zip(bags, widths):
                elements = list(values[offsets[i]:offsets[i + 1]])
                line += elements + [-1] * (w - len(elements))
            expected.append(line)
        got = join_padded(sparse if rows is None else sparse[rows], bags, widths, rows=rows)
        assert got.shape == (len(picked), 3 + sum(widths)) and got.dtype == np.int64
        assert got.tolist() == expected
