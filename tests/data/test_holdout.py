"""Validation folds of an encoded dataset: each fold's training and validation rows
partition the data, the folds' validation blocks are disjoint, and fold 0 is the split
``crossrank train`` makes."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank.data.dataset import EncodedDataset
from crossrank.data.holdout import holdout, holdout_bounds, max_folds


def _numbered(n: int) -> EncodedDataset:
    """Rows whose first sparse id is the row's number, and whose dense value is too
    (float64 arithmetic below, exact for these integers)."""
    dense = np.arange(n, dtype=np.float32)[:, None]  # (N, 1)
    sparse = np.stack([np.arange(n), np.arange(n) % 3], axis=1)  # (N, 2)
    return EncodedDataset.from_arrays(dense, sparse, np.zeros(n, np.float32))


@pytest.mark.parametrize("n, fraction", [(100, 0.1), (103, 0.2), (8000, 0.1), (7, 0.5)])
def test_each_folds_rows_partition_the_data(n, fraction):
    ds = _numbered(n)
    v = int(n * fraction)
    blocks = []
    for fold in range(max_folds(n, fraction)):
        train, valid = holdout(ds, fraction, fold)
        assert valid is not None
        t, h = train.sparse[:, 0].tolist(), valid.sparse[:, 0].tolist()
        assert sorted(t + h) == list(range(n)) and not set(t) & set(h)  # a partition
        assert t == sorted(t)  # the training rows keep their order
        assert h == list(range(n - (fold + 1) * v, n - fold * v))  # the fold's block
        # the other columns follow the same rows
        assert np.array_equal(train.dense[:, 0].astype(np.float64), np.array(t, np.float64))
        assert train.sparse[:, 1].tolist() == [r % 3 for r in t]
        blocks.append(set(h))
    assert len(blocks) == n // v and len(set().union(*blocks)) == len(blocks) * v  # disjoint


def test_fold_0_is_the_split_train_makes():
    ds = _numbered(50)
    train, valid = holdout(ds, 0.2)
    assert train.sparse[:, 0].tolist() == list(range(40))
    assert valid is not None and valid.sparse[:, 0].tolist() == list(range(40, 50))
    train, valid = holdout(ds, 0.0)
    assert valid is None and len(train) == 50


def test_folds_that_do_not_fit_are_refused():
    assert max_folds(8000, 0.1) == 10 and max_folds(8009, 0.1) == 10
    assert holdout_bounds(8000, 0.1, 9) == (0, 800)
    with pytest.raises(ValueError, match="fold 10 of 800 validation rows does not fit"):
        holdout_bounds(8000, 0.1, 10)
    with pytest.raises(ValueError, match="fold must be a non-negative integer"):
        holdout_bounds(10, 0.1, -1)
