"""Joining caches of consecutive pieces of the data gives, byte for byte, the cache of all of it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from crossrank.data import (
    FeatureEncoder,
    TableSchema,
    concatenate_caches,
    encode_to_cache,
    make_synthetic_clicks,
)

SCHEMA = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2", "C3"))


def same_bytes(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def encode_pieces(tmp_path: Path, table: pa.Table, enc: FeatureEncoder, cuts: list[int],
                  name: str) -> list[Path]:
    parts = []
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        part = tmp_path / f"{name}{k}"
        encode_to_cache([table.slice(lo, hi - lo)] if hi > lo else [], enc, part)
        parts.append(part)
    return parts


def test_joined_parts_equal_the_cache_of_all_rows(tmp_path):
    clicks = make_synthetic_clicks(1000, seed=3, num_dense=2, num_categorical=3, vocab_size=50,
                                   planted_pairs=((0, 1),), planted_triples=())
    enc = FeatureEncoder(SCHEMA, missing_indicator=True).fit([clicks])
    encode_to_cache([clicks], enc, tmp_path / "whole")
    # an empty piece in the middle (a rank whose rows were all skipped) is left out
    parts = encode_pieces(tmp_path, clicks, enc, [0, 10, 10, 640, 1000], "p")
    ds = concatenate_caches(parts, tmp_path / "joined")
    same_bytes(tmp_path / "joined", tmp_path / "whole")
    assert len(ds) == 1000 and ds.vocab_sizes == enc.vocab_sizes
    with pytest.raises(ValueError, match="not empty"):
        concatenate_caches(parts, tmp_path / "joined")
    assert len(concatenate_caches(parts[:1], tmp_path / "joined", overwrite=True)) == 10


@pytest.mark.parametrize("ids", [
    pa.array([3, 2**53 + 1, 7, 9, 11], pa.int64()),
    pa.array(["a", "b", "a-much-longer-id", "cc", "d"]),  # the widest id in one part only
])
def test_ids_of_either_type_are_joined_as_one_encoding_writes_them(tmp_path, ids):
    schema = TableSchema(label=None, dense=("x",), categorical=("c",), id_column="rid")
    table = pa.table({"rid": ids, "x": [1.0, 2.0, 3.0, 4.0, 5.0], "c": list("abcab")})
    enc = FeatureEncoder(schema).fit([table])
    encode_to_cache([table], enc, tmp_path / "whole")
    parts = encode_pieces(tmp_path, table, enc, [0, 2, 3, 5], "p")
    ds = concatenate_caches(parts, tmp_path / "joined")
    same_bytes(tmp_path / "joined", tmp_path / "whole")
    assert ds.ids.tolist() == ids.to_pylist() and ds.label is None


def test_parts_of_other_encoders_are_refused(tmp_path):
    clicks = make_synthetic_clicks(50, seed=0, num_dense=2, num_categorical=3, vocab_size=9,
                                   planted_pairs=((0, 1),), planted_triples=())
    encode_to_cache([clicks], FeatureEncoder(SCHEMA).fit([clicks]), tmp_path / "a")
    encode_to_cache([clicks], FeatureEncoder(SCHEMA, hash_buckets=5).fit([]), tmp_path / "b")
    with pytest.raises(ValueError, match="other columns or vocab sizes"):
        concatenate_caches([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    with pytest.raises(ValueError, match="non-empty sequence"):
        concatenate_caches([], tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        concatenate_caches([tmp_path / "a", tmp_path / "nothing"], tmp_path / "c")
    assert not (tmp_path / "c").exists()
