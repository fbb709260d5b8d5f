"""Validation rows held out of an encoded dataset: the last ``valid_fraction`` of its rows
(what ``crossrank train`` validates on), or, for K-fold validation in ``crossrank tune``, the
``fold``-th block of that size counted back from the end.

With N rows and V = int(N * valid_fraction) rows to validate on, fold k validates on rows
``N - (k+1) V .. N - k V`` and trains on all the others, in their order: fold 0 is exactly the
split ``crossrank train`` makes (a row-range view), and folds 0..K-1 validate on disjoint
blocks, so K * V must not exceed N.
"""

from __future__ import annotations

import numpy as np

from crossrank.data.dataset import EncodedDataset


def holdout_bounds(n_rows: int, valid_fraction: float, fold: int = 0) -> tuple[int, int]:
    """``(start, stop)`` of fold ``fold``'s validation rows among ``n_rows``.

    Example:
        >>> holdout_bounds(100, 0.1), holdout_bounds(100, 0.1, fold=2), holdout_bounds(7, 0.0)
        ((90, 100), (70, 80), (7, 7))
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 0:
        raise ValueError(f"fold must be a non-negative integer, got {fold!r}")
    n_valid = int(n_rows * valid_fraction)
    stop = n_rows - fold * n_valid
    if stop - n_valid < 0:
        raise ValueError(f"fold {fold} of {n_valid} validation rows does not fit in "
                         f"{n_rows} rows")
    return stop - n_valid, stop


def max_folds(n_rows: int, valid_fraction: float) -> int:
    """How many disjoint validation blocks of ``int(n_rows * valid_fraction)`` rows fit.

    Example:
        >>> max_folds(8000, 0.1), max_folds(8005, 0.1), max_folds(10, 0.05)
        (10, 10, 0)
    """
    n_valid = int(n_rows * valid_fraction)
    return n_rows // n_valid if n_valid else 0


def holdout(dataset: EncodedDataset, valid_fraction: float, fold: int = 0
            ) -> tuple[EncodedDataset, EncodedDataset | None]:
    """``(train, valid)`` views of ``dataset`` for fold ``fold`` (module doc); valid is None
    when ``valid_fraction`` holds out no row. Fold 0's train rows are a range view; another
    fold's are the rows before and after its block, as an index view (N - V int64)."""
    n = len(dataset)
    start, stop = holdout_bounds(n, valid_fraction, fold)
    valid = dataset.rows(start, stop) if stop > start else None
    if stop == n:
        return dataset.rows(0, start), valid
    keep = np.concatenate([np.arange(0, start), np.arange(stop, n)])  # (N - V,)
    return dataset.subset(keep), valid
