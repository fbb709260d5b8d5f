"""Encoded cache and EncodedDataset: round trip, views, and batches covering each row once."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from crossrank.data import (
    EncodedDataset,
    FeatureEncoder,
    TableSchema,
    encode_to_cache,
    make_synthetic_clicks,
    remove_cache,
)

SCHEMA = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2", "C3"))


@pytest.fixture(scope="module")
def clicks() -> pa.Table:
    return make_synthetic_clicks(1000, seed=3, num_dense=2, num_categorical=3, vocab_size=50,
                                 planted_pairs=((0, 1),), planted_triples=())


@pytest.fixture(scope="module")
def encoder(clicks) -> FeatureEncoder:
    return FeatureEncoder(SCHEMA, missing_indicator=True).fit([clicks])


def _chunks(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def test_cache_round_trip_equals_direct_transform(tmp_path, clicks, encoder):
    ds = encode_to_cache(_chunks(clicks, 300), encoder, tmp_path / "cache")
    direct = encoder.transform(clicks)
    for opened in (ds, EncodedDataset.open(tmp_path / "cache")):
        assert len(opened) == 1000
        assert isinstance(opened.dense, np.memmap)
        np.testing.assert_array_equal(opened.dense, direct.dense)
        np.testing.assert_array_equal(opened.sparse, direct.sparse)
        np.testing.assert_array_equal(opened.label, direct.label)
        assert opened.ids is None
        assert opened.sparse.dtype == np.int32  # every vocabulary fits in int32
        assert opened.vocab_sizes == encoder.vocab_sizes
        assert opened.dense_names == encoder.dense_names
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["num_rows"] == 1000
    for name in ("dense", "sparse", "label"):  # plain .npy: loads without pickle
        arr = np.load(tmp_path / "cache" / f"{name}.npy", allow_pickle=False)
        assert len(arr) == 1000


def test_wide_vocabularies_are_stored_as_int64(tmp_path, clicks):
    enc = FeatureEncoder(SCHEMA, hash_buckets=2**31).fit([])
    ds = encode_to_cache([clicks], enc, tmp_path / "c")
    assert ds.sparse.dtype == np.int64
    assert int(ds.sparse.max()) > 2**24  # big ids survive exactly
    np.testing.assert_array_equal(ds.sparse, enc.transform(clicks).sparse)


def test_ids_are_cached_as_integers_or_text(tmp_path):
    schema = TableSchema(label=None, dense=("x",), categorical=("c",), id_column="rid")
    big = 2**53 + 1
    ints = pa.table({"rid": pa.array([big, 2, 3], pa.int64()), "x": [1.0, 2.0, 3.0],
                     "c": ["a", "b", "a"]})
    enc = FeatureEncoder(schema).fit([ints])
    ds = encode_to_cache([ints.slice(0, 2), ints.slice(2)], enc, tmp_path / "i")
    assert ds.ids.dtype == np.int64 and ds.ids.tolist() == [big, 2, 3]
    assert ds.label is None
    texts = ints.set_column(0, "rid", pa.array(["007", "a-long-id", "x"]))
    ds = encode_to_cache([texts.slice(0, 1), texts.slice(1)], enc, tmp_path / "s")
    assert ds.ids.tolist() == ["007", "a-long-id", "x"]
    assert not (tmp_path / "s" / "ids.tmp.arrow").exists()
    batches = list(ds.iter_batches(2, shuffle=False))
    assert [b[2] for b in batches] == [None, None]  # no label: None in the label slot


def test_existing_directories_are_protected(tmp_path, clicks, encoder):
    encode_to_cache([clicks], encoder, tmp_path / "c")
    with pytest.raises(ValueError, match="not empty"):
        encode_to_cache([clicks], encoder, tmp_path / "c")
    ds = encode_to_cache([clicks.slice(0, 10)], encoder, tmp_path / "c", overwrite=True)
    assert len(ds) == 10
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a cache"):
        encode_to_cache([clicks], encoder, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    remove_cache(tmp_path / "c")
    assert not (tmp_path / "c").exists()
    with pytest.raises(FileNotFoundError):
        EncodedDataset.open(tmp_path / "c")


def _rows_seen(ds: EncodedDataset, **kwargs) -> list[int]:
    """Row identities in batch order: the first sparse column holds the row number."""
    out = []
    for dense, sparse, label, _ in ds.iter_batches(**kwargs):
        assert dense.dtype == torch.float32 and sparse.dtype == torch.int64
        assert label.dtype == torch.float32 and label.shape == (len(sparse),)
        assert dense.shape == (len(sparse), 2) and sparse.shape[1] == 2
        out += sparse[:, 0].tolist()
    return out


@pytest.fixture
def numbered() -> EncodedDataset:
    n = 103
    dense = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    sparse = np.stack([np.arange(n), np.arange(n) % 7], axis=1)
    return EncodedDataset.from_arrays(dense, sparse, (np.arange(n) % 2).astype(np.float32))


def test_batches_cover_each_row_once_in_order_without_shuffle(numbered):
    assert _rows_seen(numbered, batch_size=10, shuffle=False) == list(range(103))
    sizes = [len(b[1]) for b in numbered.iter_batches(10, shuffle=False)]
    assert sizes == [10] * 10 + [3]
    sizes = [len(b[1]) for b in numbered.iter_batches(10, shuffle=False, drop_last=True)]
    assert sizes == [10] * 10
    for dense, sparse, label, _ in numbered.iter_batches(16, shuffle=True, seed=1):
        # the row's values travel together
        np.testing.assert_array_equal(dense[:, 0].numpy(), sparse[:, 0].numpy())
        np.testing.assert_array_equal(label.numpy(), (sparse[:, 0] % 2).numpy())


def test_shuffled_epochs_are_permutations_and_deterministic(numbered):
    first = _rows_seen(numbered, batch_size=8, shuffle=True, seed=5)
    assert sorted(first) == list(range(103))
    assert first != list(range(103))
    assert _rows_seen(numbered, batch_size=8, shuffle=True, seed=5) == first
    assert _rows_seen(numbered, batch_size=32, shuffle=True, seed=5) == first  # same order
    assert _rows_seen(numbered, batch_size=8, shuffle=True, seed=6) != first
    # start/stop take positions of the epoch's order: resuming mid-epoch continues it exactly
    resumed = _rows_seen(numbered, batch_size=8, shuffle=True, seed=5, start=40)
    assert resumed == first[40:]
    assert _rows_seen(numbered, batch_size=8, shuffle=True, seed=5, start=8, stop=24) == \
        first[8:24]


def test_views_for_validation_splits(numbered, tmp_path, clicks, encoder):
    train, valid = numbered.rows(0, 90), numbered.rows(90, 103)
    assert len(train) == 90 and len(valid) == 13
    assert sorted(_rows_seen(train, batch_size=7, shuffle=True, seed=0)) == list(range(90))
    assert _rows_seen(valid, batch_size=7, shuffle=False) == list(range(90, 103))
    assert valid.sparse[:, 0].tolist() == list(range(90, 103))
    picked = numbered.subset([5, 100, 7])
    assert picked.sparse[:, 0].tolist() == [5, 100, 7]
    assert _rows_seen(picked.rows(1, 3), batch_size=4, shuffle=False) == [100, 7]
    assert picked.subset([2, 0]).sparse[:, 0].tolist() == [7, 5]
    cache = encode_to_cache([clicks], encoder, tmp_path / "c")
    view = cache.rows(10, 20)
    assert isinstance(view.dense, np.memmap)  # a row range of a cache is not copied
    np.testing.assert_array_equal(view.dense, cache.dense[10:20])
    with pytest.raises(ValueError, match="start"):
        numbered.rows(5, 200)
    with pytest.raises(ValueError, match="indices"):
        numbered.subset([0, 103])


def test_from_arrays_and_iter_batches_validate_input(numbered):
    with pytest.raises(TypeError, match="integer ids"):
        EncodedDataset.from_arrays(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32))
    with pytest.raises(ValueError, match="rows"):
        EncodedDataset.from_arrays(np.zeros((3, 1), np.float32), np.zeros((2, 1), np.int64))
    with pytest.raises(ValueError, match="batch_size"):
        next(numbered.iter_batches(0, shuffle=False))
    with pytest.raises(TypeError, match="shuffle"):
        next(numbered.iter_batches(4, shuffle="yes"))
    with pytest.raises(ValueError, match="start"):
        next(numbered.iter_batches(4, shuffle=False, start=50, stop=10))


def test_chunks_encoded_on_several_threads_write_the_same_cache_bytes(tmp_path, clicks):
    from crossrank.data.multi_valued import MultiValuedSpec

    rng = np.random.default_rng(0)
    lists = pa.array(["|".join(str(v) for v in rng.integers(0, 30, rng.integers(0, 6)))
                      for _ in range(clicks.num_rows)])
    table = clicks.append_column("M1", lists)
    schema = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2", "C3"),
                         multi_valued=(MultiValuedSpec("M1", "|"),))
    enc = FeatureEncoder(schema).fit([table])
    for workers in (1, 3):
        encode_to_cache(_chunks(table, 37), enc, tmp_path / f"w{workers}", workers=workers)
    files = sorted(p.name for p in (tmp_path / "w1").iterdir())
    assert "sparse.npy" in files and "multi0.values.npy" in files
    assert files == sorted(p.name for p in (tmp_path / "w3").iterdir())
    for name in files:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w3" / name).read_bytes(), name
