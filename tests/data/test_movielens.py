"""MovieLens 100K loader (skips without the shared data) and age buckets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from crossrank.data import FeatureEncoder, load_movielens_100k, movielens_schema
from crossrank.data.movielens import bucketize_age


def test_age_buckets_are_the_movielens_1m_groups():
    ages = np.array([1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73])
    assert bucketize_age(ages).tolist() == [1, 1, 18, 18, 25, 25, 35, 35, 45, 45, 50, 50, 56, 56]


def test_load_movielens_100k(movielens_dir):
    table = load_movielens_100k(movielens_dir)
    schema = movielens_schema()
    assert table.num_rows == 100_000
    assert set(table.column_names) == set(schema.column_names)
    assert schema.task == "regression" and schema.dense == ()
    first = table.slice(0, 1).to_pylist()[0]
    # u.data line 1: "196 242 3 881250949"; u.user line 196: "196|49|M|writer|55105"
    assert first == {"user_id": "196", "movie_id": "242", "user_gender": "M",
                     "user_zip_code": "55105", "user_occupation_text": "writer",
                     "bucketized_user_age": 45, "user_rating": 3.0}
    assert table["user_rating"].type == pa.float64()
    assert set(table["user_rating"].to_pylist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert set(table["user_gender"].to_pylist()) == {"M", "F"}
    assert len(set(table["user_id"].to_pylist())) == 943
    assert len(set(table["movie_id"].to_pylist())) == 1682
    assert sum(c.null_count for c in table.columns) == 0
    enc = FeatureEncoder(schema).fit([table])
    assert enc.vocab_sizes[:3] == (943 + 2, 1682 + 2, 2 + 2)


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="u.data"):
        load_movielens_100k(tmp_path)
