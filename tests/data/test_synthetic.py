"""Synthetic clicks: determinism, shape, base rate, and crosses hidden from single fields."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from crossrank.data import (
    FeatureEncoder,
    SyntheticSpec,
    make_synthetic_clicks,
    read_table,
    write_synthetic,
)


@pytest.fixture(scope="module")
def clicks() -> pa.Table:
    return make_synthetic_clicks(40_000, seed=0)


def test_same_seed_same_table_other_seed_other_table():
    a = make_synthetic_clicks(500, seed=7)
    assert a.equals(make_synthetic_clicks(500, seed=7))
    assert not a.equals(make_synthetic_clicks(500, seed=8))


def test_columns_types_missing_values_and_base_rate(clicks):
    spec = SyntheticSpec.from_table(clicks)
    assert clicks.column_names == ["label"] + [f"I{i}" for i in range(1, 14)] + [
        f"C{i}" for i in range(1, 27)]
    assert clicks.column_names == list(spec.schema.column_names)
    assert set(clicks["label"].to_pylist()) == {0, 1}
    assert 0.20 <= np.mean(clicks["label"].to_numpy()) <= 0.25
    for i in range(1, 14):
        col = clicks[f"I{i}"]
        assert col.type == pa.int64() and col.null_count > 0
        assert min(v for v in col.to_pylist() if v is not None) >= 0
    for i in range(1, 27):
        col = clicks[f"C{i}"]
        assert col.null_count > 0
        values = [v for v in col.to_pylist()[:200] if v is not None]
        assert all(re.fullmatch(r"[0-9a-f]{8}", v) for v in values)
        assert len(set(values)) > 3


def test_spec_names_the_planted_crosses():
    t = make_synthetic_clicks(100, seed=0, num_categorical=10, planted_pairs=((0, 9), (3, 4)),
                              planted_triples=((1, 2, 5),), vocab_size=[20] * 10)
    spec = SyntheticSpec.from_table(t)
    assert spec.planted_pairs == (("C1", "C10"), ("C4", "C5"))
    assert spec.planted_triples == (("C2", "C3", "C6"),)
    assert spec.vocab_sizes == (20,) * 10
    assert SyntheticSpec.from_dict(spec.to_dict()) == spec


def _held_out_auc(keys: np.ndarray, y: np.ndarray) -> float:
    """AUC on the second half of a per-key click rate learned on the first half."""
    half = len(y) // 2
    _, inverse = np.unique(keys, return_inverse=True)
    clicks = np.bincount(inverse[:half], weights=y[:half], minlength=inverse.max() + 1)
    shows = np.bincount(inverse[:half], minlength=inverse.max() + 1)
    rate = (clicks + 10 * y[:half].mean()) / (shows + 10)  # smoothed towards the mean
    return roc_auc_score(y[half:], rate[inverse[half:]])


def test_planted_pairs_carry_signal_that_single_fields_do_not(clicks):
    spec = SyntheticSpec.from_table(clicks)
    enc = FeatureEncoder(spec.schema).fit([clicks])
    ids = enc.transform(clicks).sparse
    y = clicks["label"].to_numpy()
    field = {name: ids[:, i] for i, name in enumerate(enc.sparse_names)}
    for f, g in spec.planted_pairs:
        pair = _held_out_auc(field[f] * 100_000 + field[g], y)
        singles = [_held_out_auc(field[single], y) for single in (f, g)]
        assert pair > 0.62
        assert max(singles) < 0.58  # only the small main effect
        assert pair - max(singles) > 0.07
    for f, g in [("C10", "C11"), ("C12", "C20"), ("C20", "C21")]:  # outside every cross
        assert abs(_held_out_auc(field[f] * 100_000 + field[g], y) - 0.5) < 0.03
        assert abs(_held_out_auc(field[f], y) - 0.5) < 0.03


def test_without_main_effects_single_fields_carry_nothing():
    t = make_synthetic_clicks(30_000, seed=0, main_weight=0.0)
    spec = SyntheticSpec.from_table(t)
    ids = FeatureEncoder(spec.schema).fit([t]).transform(t).sparse
    y = t["label"].to_numpy()
    for i in range(9):  # the fields of the planted pairs and triple
        assert abs(_held_out_auc(ids[:, i], y) - 0.5) < 0.03
    assert _held_out_auc(ids[:, 0] * 100_000 + ids[:, 1], y) > 0.6


def test_different_seeds_sample_one_world(clicks):
    # a click rate per planted value pair learned on one sample predicts another sample
    other = make_synthetic_clicks(20_000, seed=1)
    spec = SyntheticSpec.from_table(clicks)
    assert SyntheticSpec.from_table(other).intercept == spec.intercept
    enc = FeatureEncoder(spec.schema).fit([clicks])
    both = pa.concat_tables([clicks.slice(0, 20_000), other.replace_schema_metadata(
        clicks.schema.metadata)])
    ids = enc.transform(both).sparse
    keys = ids[:, 0] * 100_000 + ids[:, 1]  # C1 x C2, learned on seed 0, scored on seed 1
    assert _held_out_auc(keys, both["label"].to_numpy()) > 0.6
    assert (ids[20_000:, 0] == 1).mean() < 0.01  # the other sample's values are known ones


def test_write_synthetic_round_trips_through_every_format(tmp_path):
    expected = make_synthetic_clicks(300, seed=4)
    for fmt, name in (("criteo", "s.tsv"), ("csv", "s.csv"), ("parquet", "s.parquet")):
        spec = write_synthetic(tmp_path / name, 300, fmt=fmt, seed=4)
        assert spec.planted_pairs[0] == ("C1", "C2")
        table = read_table(tmp_path / name, fmt=fmt, schema=spec.schema)
        assert table.num_rows == 300
        assert table["label"].to_pylist() == [float(v) for v in expected["label"].to_pylist()]
        assert table["I3"].to_pylist() == [
            None if v is None else float(v) for v in expected["I3"].to_pylist()]
        assert table["C7"].to_pylist() == expected["C7"].to_pylist()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_rows"):
        make_synthetic_clicks(0)
    with pytest.raises(ValueError, match="planted_pairs"):
        make_synthetic_clicks(10, num_categorical=4, planted_pairs=((0, 4),), planted_triples=())
    with pytest.raises(ValueError, match="planted_triples"):
        make_synthetic_clicks(10, planted_triples=((1, 1, 2),))
    with pytest.raises(ValueError, match="vocab_size"):
        make_synthetic_clicks(10, num_categorical=2, vocab_size=[5], planted_pairs=(),
                              planted_triples=())
    with pytest.raises(ValueError, match="positive_rate"):
        make_synthetic_clicks(10, positive_rate=1.0)
