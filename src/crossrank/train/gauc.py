"""Group AUC: the AUC within each group (a user, a query), averaged over the groups.

A ranker that orders each user's items well can still have a poor global AUC (users differ in
their base rates) and the reverse; feed teams read the per-group AUC. For groups g with weight
``n_g`` (rows, or the sum of the rows' weights) and AUC ``AUC_g`` (the weighted AUC of
:mod:`crossrank.train.weighted_metrics` on the group's rows)::

    GAUC = sum_g n_g AUC_g / sum_g n_g        (impression-weighted)
    uAUC = (1/G) sum_g AUC_g                   (every group counts the same)

over the G groups that have weight in both classes; a group with one class only (or whose
rows of a class all weigh 0) has no AUC and is skipped, and how many groups and rows were
skipped is reported beside the means.
"""

from __future__ import annotations

import numpy as np


def group_auc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray,
              weights: np.ndarray | None = None) -> dict[str, float]:
    """GAUC and uAUC of the module doc, and the counts of groups and rows used and skipped.

    One pass over the rows sorted by (group, score): each run of tied scores in a group adds
    ``w_pos(run) * (w_neg(below the run in the group) + w_neg(run) / 2)``, from cumulative
    sums, so the cost is a sort whatever the number of groups.

    Shape:
        scores, labels, groups (ints, strings or floats), weights: (R,) -> a dict of floats:
        gauc, uauc, groups, groups_skipped, rows_skipped (NaN means when no group has both
        classes).

    Example:
        >>> m = group_auc(np.array([0.9, 0.1, 0.3, 0.4, 0.5]), np.array([1, 0, 1, 0, 1]),
        ...               np.array(["a", "a", "b", "b", "c"]))
        >>> m["gauc"], m["uauc"], m["groups"], m["groups_skipped"], m["rows_skipped"]
        (0.5, 0.5, 3.0, 1.0, 1.0)
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1) >= 0.5
    g = np.asarray(groups).reshape(-1)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if not len(s) == len(y) == len(g) == len(w):
        raise ValueError(f"scores, labels, groups and weights differ in length: "
                         f"{len(s)}, {len(y)}, {len(g)}, {len(w)}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite to compute the group AUC")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    _, code = np.unique(g, return_inverse=True)  # (R,) group number in [0, G)
    code = code.reshape(-1)
    n_groups = int(code.max()) + 1 if len(code) else 0
    order = np.lexsort((s, code))  # by group, then score
    code, s, y, w = code[order], s[order], y[order], w[order]
    neg_w, pos_w = np.where(y, 0.0, w), np.where(y, w, 0.0)
    cum_neg = np.concatenate([[0.0], np.cumsum(neg_w)])  # (R+1,) negatives' weight before i
    # runs of tied scores within a group: [start[k], start[k+1])
    new_run = np.ones(len(s), dtype=bool)
    new_run[1:] = (code[1:] != code[:-1]) | (s[1:] != s[:-1])
    start = np.flatnonzero(new_run)
    stop = np.append(start[1:], len(s))
    new_group = np.ones(len(s), dtype=bool)
    new_group[1:] = code[1:] != code[:-1]
    group_start = np.flatnonzero(new_group)[code]  # (R,) first row of each row's group
    run_code = code[start]
    neg_below = cum_neg[start] - cum_neg[group_start[start]]
    neg_tied = cum_neg[stop] - cum_neg[start]
    pos_run = np.add.reduceat(pos_w, start) if len(start) else np.zeros(0)
    pairs = np.bincount(run_code, pos_run * (neg_below + 0.5 * neg_tied), minlength=n_groups)
    w_pos = np.bincount(code, pos_w, minlength=n_groups)
    w_neg = np.bincount(code, neg_w, minlength=n_groups)
    rows = np.bincount(code, minlength=n_groups)
    used = (w_pos > 0) & (w_neg > 0)
    auc = pairs[used] / (w_pos[used] * w_neg[used])
    size = (w_pos + w_neg)[used]
    nan = float("nan")
    return {"gauc": float(np.dot(size, auc) / size.sum()) if used.any() else nan,
            "uauc": float(auc.mean()) if used.any() else nan,
            "groups": float(n_groups), "groups_skipped": float(n_groups - used.sum()),
            "rows_skipped": float(rows[~used].sum())}
