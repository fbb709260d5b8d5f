"""Group AUC against an explicit loop over the groups with scikit-learn's AUC."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from crossrank.train.gauc import group_auc
from tolerances import TOLERANCES

RTOL, ATOL = TOLERANCES[torch.float64]


def _reference(s, y, g, w):
    """Per group: scikit-learn's AUC, or skipped with one class (or no weight in one)."""
    aucs, sizes, skipped_rows, groups = [], [], 0, np.unique(g)
    for group in groups:
        at = g == group
        if not (np.sum(w[at] * y[at]) > 0 and np.sum(w[at] * (1 - y[at])) > 0):
            skipped_rows += int(at.sum())
            continue
        aucs.append(roc_auc_score(y[at], s[at], sample_weight=w[at]))
        sizes.append(w[at].sum())
    return {"gauc": np.dot(sizes, aucs) / np.sum(sizes), "uauc": np.mean(aucs),
            "groups": len(groups), "groups_skipped": len(groups) - len(aucs),
            "rows_skipped": skipped_rows}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["int", "str"])
def test_group_auc_equals_a_loop_over_scikit_learn(weighted, kind):
    rng = np.random.default_rng(7)
    n = 3000
    g = rng.integers(0, 150, n)  # ~20 rows a group: some one-class groups
    y = (rng.random(n) < 0.2 + 0.004 * g).astype(np.float64)
    s = np.round(rng.random(n) * 0.5 + 0.3 * y, 2)  # ties within groups
    w = rng.integers(0, 4, n).astype(np.float64) if weighted else np.ones(n)
    if weighted:
        w[g == 3] = 0.0  # a group of weight 0: "empty", skipped
    groups = g if kind == "int" else np.array([f"user{v}" for v in g])
    got = group_auc(s, y, groups, w if weighted else None)
    want = _reference(s, y, g, w)
    assert want["groups_skipped"] >= 2 and want["rows_skipped"] > 0  # the skipping is exercised
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key


def test_all_equal_scores_give_one_half_and_no_usable_group_gives_nan():
    y = np.array([0, 1, 0, 1, 1, 1.0])
    g = np.array([1, 1, 2, 2, 3, 3])
    m = group_auc(np.full(6, 0.4), y, g)
    assert m["gauc"] == m["uauc"] == 0.5
    assert (m["groups"], m["groups_skipped"], m["rows_skipped"]) == (3, 1, 2)
    none = group_auc(np.array([0.1, 0.9]), np.array([1.0, 1.0]), np.array(["a", "b"]))
    assert math.isnan(none["gauc"]) and math.isnan(none["uauc"]) and none["rows_skipped"] == 2


def test_group_sizes_weight_gauc_but_not_uauc():
    # group a: 4 rows, perfectly ordered (AUC 1); group b: 2 rows, reversed (AUC 0)
    s = np.array([0.9, 0.8, 0.1, 0.2, 0.1, 0.9])
    y = np.array([1, 1, 0, 0, 1, 0.0])
    g = np.array(["a", "a", "a", "a", "b", "b"])
    m = group_auc(s, y, g)
    assert m["gauc"] == pytest.approx(4 / 6) and m["uauc"] == 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="length"):
        group_auc(np.zeros(3), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        group_auc(np.array([np.nan, 0.1]), np.array([0, 1.0]), np.array([1, 1]))
