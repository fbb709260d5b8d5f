"""FeatureEncoder: vocabulary and hashing ids, dense transforms, streaming fit, persistence."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from test_hashing import reference_hash

from crossrank.data import EncodedBatch, FeatureEncoder, TableSchema
from crossrank.data import fit_stats as fit_stats_module
from crossrank.data.vocabulary import Vocabulary
from tolerances import TOLERANCES

F64 = dict(zip(("rtol", "atol"), TOLERANCES[torch.float64], strict=True))
F32 = dict(zip(("rtol", "atol"), TOLERANCES[torch.float32], strict=True))
SCHEMA = TableSchema(label="y", dense=("a", "b"), categorical=("u", "v"))


def table(rows: list[tuple]) -> pa.Table:
    y, a, b, u, v = zip(*rows, strict=True)
    return pa.table({
        "y": pa.array(y, pa.float64()), "a": pa.array(a, pa.float64()),
        "b": pa.array(b, pa.float64()), "u": pa.array(u, pa.string()),
        "v": pa.array(v, pa.string()),
    })


TRAIN = table([
    (1, 0.0, 10.0, "x", "p"),
    (0, 3.0, None, "y", "p"),
    (1, -2.0, 20.0, "x", None),
    (0, None, 30.0, "z", "q"),
    (1, 7.0, 40.0, "y", "q"),
    (0, 1.0, 50.0, "x", "r"),
])


def test_vocabulary_ids_by_frequency_then_value_with_missing_and_oov_reserved():
    enc = FeatureEncoder(SCHEMA).fit([TRAIN])
    # u: x x3, y x2, z x1 -> ids 2, 3, 4; v: p x2, q x2 (tie: by value), r x1 -> 2, 3, 4
    assert enc.vocabulary("u") == ["x", "y", "z"]
    assert enc.vocabulary("v") == ["p", "q", "r"]
    assert enc.vocab_sizes == (5, 5)
    out = enc.transform(table([(0, 1.0, 1.0, "z", None), (1, 1.0, 1.0, "unseen", "q"),
                               (0, 1.0, 1.0, None, "p")]))
    assert out.sparse.tolist() == [[4, 0], [1, 3], [0, 2]]
    assert out.sparse.dtype == np.int64


def test_min_count_and_max_vocab_size_send_rare_values_to_oov():
    enc = FeatureEncoder(SCHEMA, min_count=2).fit([TRAIN])
    assert enc.vocabulary("u") == ["x", "y"]
    assert enc.transform(TRAIN).sparse[:, 0].tolist() == [2, 3, 2, 1, 3, 2]
    enc = FeatureEncoder(SCHEMA, max_vocab_size=1).fit([TRAIN])
    assert enc.vocabulary("v") == ["p"] and enc.vocab_sizes == (3, 3)


def test_streaming_fit_equals_fit_on_the_whole_table(monkeypatch):
    whole = FeatureEncoder(SCHEMA, dense_transform="standardize").fit([TRAIN])
    monkeypatch.setattr(fit_stats_module, "_MERGE_ROWS", 2)  # force intermediate merges
    parts = FeatureEncoder(SCHEMA, dense_transform="standardize").fit(
        [TRAIN.slice(0, 2), TRAIN.slice(2, 1), TRAIN.slice(3)])
    # exact sums: the moments do not depend on the chunks, bit for bit
    assert parts.to_dict() == whole.to_dict()
    a = whole.transform(TRAIN)
    b = parts.transform(TRAIN)
    np.testing.assert_array_equal(a.sparse, b.sparse)
    np.testing.assert_array_equal(a.dense, b.dense)


def test_hash_buckets_use_the_documented_hash():
    n = 1000
    enc = FeatureEncoder(SCHEMA, hash_buckets=n).fit([])
    assert enc.vocab_sizes == (n + 1, n + 1)
    out = enc.transform(table([(1, 1.0, 1.0, "68fd1e64", None), (0, 1.0, 1.0, "日本", "p")]))
    expected_u = [1 + reference_hash("68fd1e64") % n, 1 + reference_hash("日本") % n]
    assert out.sparse[:, 0].tolist() == expected_u
    assert out.sparse[:, 1].tolist() == [0, 1 + reference_hash("p") % n]
    assert out.sparse.min() >= 0 and out.sparse.max() <= n


def test_integer_categories_are_encoded_as_their_decimal_text():
    schema = TableSchema(label=None, dense=(), categorical=("id",))
    ints = pa.table({"id": pa.array([12, 7, 12, None], pa.int64())})
    text = pa.table({"id": pa.array(["12", "7", "12", None])})
    enc = FeatureEncoder(schema).fit([ints])
    assert enc.vocabulary("id") == ["12", "7"]
    np.testing.assert_array_equal(enc.transform(ints).sparse, enc.transform(text).sparse)
    hashed = FeatureEncoder(schema, hash_buckets=97).fit([])
    assert hashed.transform(ints).sparse[0, 0] == 1 + reference_hash("12") % 97


def test_hash_collisions_inside_a_vocabulary_fall_back_to_exact_lookup():
    enc = FeatureEncoder(SCHEMA).fit([TRAIN])
    expected = enc.transform(TRAIN).sparse
    for vocab in enc._vocabs:
        vocab.exact = True  # what fit does when two values share a 64-bit hash
    np.testing.assert_array_equal(enc.transform(TRAIN).sparse, expected)


@pytest.mark.parametrize("queries", [5, 63, 64, 3000])
def test_vocabulary_lookup_equals_a_dictionary(queries):
    """Distinct values in any order (a few, and enough to be searched sorted), known and
    unknown, against a dict from value to id (position + 2, OOV 1)."""
    rng = np.random.default_rng(queries)
    known = [f"{x:x}" for x in rng.choice(10**9, 2000, replace=False)]
    vocab = Vocabulary(pa.array(known))
    ids = {v: k + 2 for k, v in enumerate(known)}
    asked = list(dict.fromkeys(
        [known[i] for i in rng.integers(0, 2000, queries)] + [f"new{i}" for i in range(queries)]))
    rng.shuffle(asked)
    got = vocab.lookup(pa.array(asked)).tolist()
    assert got == [ids.get(v, 1) for v in asked]


def test_dense_transforms_and_missing_indicators():
    x = np.array([0.0, 3.0, -2.0, np.nan, 7.0, 1.0])
    log = FeatureEncoder(SCHEMA, missing_indicator=True).fit([TRAIN]).transform(TRAIN)
    expected = np.where(np.isnan(x), 0.0, np.log1p(np.maximum(np.nan_to_num(x), 0.0)))
    np.testing.assert_allclose(log.dense[:, 0], expected, **F32)
    assert log.dense[:, 2].tolist() == [0, 0, 0, 1, 0, 0]  # a_missing
    assert log.dense[:, 3].tolist() == [0, 1, 0, 0, 0, 0]  # b_missing
    assert log.dense.dtype == np.float32 and log.dense.shape == (6, 4)
    std = FeatureEncoder(SCHEMA, dense_transform="standardize").fit([TRAIN]).transform(TRAIN)
    seen = x[~np.isnan(x)]
    expected = np.where(np.isnan(x), 0.0, (x - seen.mean()) / seen.std())
    np.testing.assert_allclose(std.dense[:, 0], expected, **F32)
    raw = FeatureEncoder(SCHEMA, dense_transform="none").fit([TRAIN]).transform(TRAIN)
    np.testing.assert_array_equal(raw.dense[:, 0], np.nan_to_num(x))
    assert raw.dense.shape == (6, 2)


def test_names_labels_and_ids():
    schema = TableSchema(label="y", dense=("a",), categorical=("u",), id_column="rid")
    t = pa.table({"rid": ["r1", "r22"], "y": [1.0, 0.0], "a": [1.0, 2.0], "u": ["x", "y"]})
    enc = FeatureEncoder(schema, missing_indicator=True).fit([t])
    assert enc.dense_names == ("a", "a_missing") and enc.sparse_names == ("u",)
    out = enc.transform(t)
    assert isinstance(out, EncodedBatch) and len(out) == 2
    assert out.label.dtype == np.float32 and out.label.tolist() == [1.0, 0.0]
    assert out.ids.tolist() == ["r1", "r22"] and out.ids.dtype.kind == "U"
    unlabelled = enc.transform(t.drop_columns(["y"]))
    assert unlabelled.label is None
    big = 2**53 + 1  # would be corrupted by any float round trip
    ints = t.set_column(0, "rid", pa.array([big, 5], pa.int64()))
    assert enc.transform(ints).ids.tolist() == [big, 5]


def test_round_trip_through_json_and_save_load(tmp_path):
    for options in ({"missing_indicator": True, "dense_transform": "standardize"},
                    {"hash_buckets": 64}, {"min_count": 2}):
        enc = FeatureEncoder(SCHEMA, **options).fit([TRAIN])
        state = json.loads(json.dumps(enc.to_dict()))
        again = FeatureEncoder.from_dict(state)
        enc.save(tmp_path / "enc")
        loaded = FeatureEncoder.load(tmp_path / "enc")
        for other in (again, loaded):
            assert other.vocab_sizes == enc.vocab_sizes
            assert other.dense_names == enc.dense_names
            a, b = enc.transform(TRAIN), other.transform(TRAIN)
            np.testing.assert_array_equal(a.sparse, b.sparse)
            np.testing.assert_array_equal(a.dense, b.dense)
    assert (tmp_path / "enc" / "encoder.json").is_file()
    assert (tmp_path / "enc" / "vocab.arrow").is_file()
    assert "vocabularies" not in json.loads((tmp_path / "enc" / "encoder.json").read_text())


def test_bad_options_and_states_raise():
    with pytest.raises(ValueError, match="dense_transform"):
        FeatureEncoder(SCHEMA, dense_transform="log")
    with pytest.raises(ValueError, match="min_count"):
        FeatureEncoder(SCHEMA, min_count=0)
    with pytest.raises(ValueError, match="hash_buckets"):
        FeatureEncoder(SCHEMA, hash_buckets=0)
    with pytest.raises(ValueError, match="hash_buckets replaces"):
        FeatureEncoder(SCHEMA, hash_buckets=10, min_count=5)
    with pytest.raises(TypeError, match="missing_indicator"):
        FeatureEncoder(SCHEMA, missing_indicator=1)
    with pytest.raises(TypeError, match="schema"):
        FeatureEncoder(SCHEMA.to_dict())
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureEncoder(SCHEMA).transform(TRAIN)
    with pytest.raises(TypeError, match="iterable of tables"):
        FeatureEncoder(SCHEMA).fit(TRAIN)
    state = FeatureEncoder(SCHEMA).fit([TRAIN]).to_dict()
    with pytest.raises(ValueError, match="unknown encoder keys"):
        FeatureEncoder.from_dict({**state, "extra": 1})
    enc = FeatureEncoder(SCHEMA).fit([TRAIN])
    with pytest.raises(ValueError, match="infinite"):
        enc.transform(TRAIN.set_column(1, "a", pa.array([np.inf] + [1.0] * 5)))
    with pytest.raises(ValueError, match="no column 'v'"):
        enc.transform(TRAIN.drop_columns(["v"]))
