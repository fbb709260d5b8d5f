"""Multi-task training: per-task metrics against scikit-learn, the monitor's choices, and on
synthetic clicks with conversions the multi-task model's conversion AUC against a
single-task model's on the same rows, each task's loss decreasing."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from crossrank.data.synthetic import make_synthetic_clicks
from crossrank.errors import ConfigError
from crossrank.models import FeatureSchema, build_model, multitask_loss
from crossrank.train.inmemory import InMemoryFitConfig, fit_tensors
from crossrank.train.metrics import binary_auc
from crossrank.train.multitask_metrics import multitask_metrics, resolve_monitor


@pytest.mark.parametrize("weighted", [False, True])
def test_per_task_metrics_are_scikit_learns_on_each_tasks_labelled_rows(weighted):
    rng = np.random.default_rng(1)
    n = 300
    labels = np.stack([rng.integers(0, 2, n), rng.normal(size=n)], axis=1).astype(float)
    labels[rng.random(n) < 0.5, 0] = np.nan
    scores = np.stack([rng.random(n), rng.normal(size=n)], axis=1)
    w = rng.integers(1, 4, n).astype(float) if weighted else None
    m = multitask_metrics(["binary", "regression"], ["buy", "price"], scores, labels, w)
    present = ~np.isnan(labels[:, 0])
    wp = None if w is None else w[present]
    assert m["buy/rows"] == present.sum() and m["price/rows"] == n
    assert m["buy/auc"] == pytest.approx(roc_auc_score(labels[present, 0], scores[present, 0],
                                                       sample_weight=wp), abs=1e-12)
    assert m["buy/logloss"] == pytest.approx(log_loss(labels[present, 0], scores[present, 0],
                                                      sample_weight=wp), rel=1e-10)
    assert m["price/rmse"] == pytest.approx(math.sqrt(mean_squared_error(
        labels[:, 1], scores[:, 1], sample_weight=w)), rel=1e-10)
    assert m["mean/auc"] == m["buy/auc"]  # the mean over the tasks that report it
    assert "mean/rmse" in m and "buy/rmse" not in m


def test_the_monitor_is_one_tasks_metric_or_their_mean():
    assert resolve_monitor(None, ["binary", "binary"], ["click", "buy"]) == "mean/logloss"
    assert resolve_monitor(None, ["binary", "regression"], ["click", "price"]) == \
        "click/logloss"
    assert resolve_monitor("auc", ["binary", "regression"], ["click", "price"]) == "mean/auc"
    assert resolve_monitor("price/rmse", ["binary", "regression"], ["click", "price"]) == \
        "price/rmse"
    for bad, message in (("price/auc", "not a regression metric"), ("cost/auc", "names no label"),
                         ("mae", "reported by no task")):
        with pytest.raises(ConfigError, match=message):
            resolve_monitor(bad, ["binary", "binary"] if bad == "mae" else
                            ["binary", "regression"], ["click", "price"])


def _encode(table, m):
    ids, sizes = [], []
    for f in range(m):
        col = table.column(f"C{f + 1}").to_pylist()
        vocab = {v: i + 1 for i, v in enumerate(sorted({v for v in col if v is not None}))}
        ids.append([vocab.get(v, 0) for v in col])
        sizes.append(len(vocab) + 1)
    return torch.tensor(ids).T.contiguous(), tuple(sizes)


def _hanley_mcneil_se(auc, positives, negatives):
    """Standard error of an AUC estimated from these class counts (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2)
                      + (negatives - 1) * (q2 - auc ** 2)) / (positives * negatives))


def _run(seed, n=9000, m=10):
    """Train a multi-task (click, conversion) and a single-task conversion DCN on the same
    training rows; their conversion AUCs on the same clicked test rows, the counts of the test
    classes, and the multi-task model's per-task losses before and after training."""
    t = make_synthetic_clicks(n, seed=seed, world_seed=seed, num_dense=0, num_categorical=m,
                              vocab_size=30, planted_pairs=((0, 1), (2, 3)), planted_triples=(),
                              conversion_pairs=((0, 1), (2, 9)))
    sparse, sizes = _encode(t, m)
    click = torch.tensor(t.column("label").to_numpy(), dtype=torch.float32)
    conv = torch.tensor(t.column("conversion").to_numpy(zero_copy_only=False).astype(np.float32))
    assert torch.equal(torch.isnan(conv), click == 0)  # observed only after a click
    y, dense, cut = torch.stack([click, conv], 1), torch.zeros(n, 0), int(n * 0.7)
    schema = FeatureSchema(categorical=tuple(f"C{f + 1}" for f in range(m)), vocab_sizes=sizes,
                           embedding_dim=4)
    options = {"deep_layers": [32], "cross.num_layers": 2}
    fit = InMemoryFitConfig(lr=3e-3, epochs=4, batch_size=128, seed=seed)
    torch.manual_seed(seed)
    multi = build_model("dcn", schema, options | {"multitask.tower_layers": [16]},
                        task=("binary", "binary"))

    def task_losses():
        with torch.no_grad():
            return multitask_loss(("binary", "binary"), multi(dense[:cut], sparse[:cut]),
                                  y[:cut])[1]
    before = task_losses()
    fit_tensors(multi, dense[:cut], y[:cut], sparse=sparse[:cut], config=fit)
    after = task_losses()
    torch.manual_seed(seed)
    single = build_model("dcn", schema, options, task="binary")
    seen = ~torch.isnan(conv[:cut])  # a single-task model has only the converted-or-not rows
    fit_tensors(single, dense[:cut][seen], conv[:cut][seen], sparse=sparse[:cut][seen],
                config=fit)
    test = ~torch.isnan(conv[cut:])
    with torch.no_grad():
        s_multi = multi(dense[cut:][test], sparse[cut:][test])[:, 1].numpy()
        s_single = single(dense[cut:][test], sparse[cut:][test]).numpy()
    yt = conv[cut:][test].numpy()
    return (binary_auc(s_multi, yt), binary_auc(s_single, yt), int(yt.sum()),
            int((1 - yt).sum()), before, after)


def test_multi_task_conversion_auc_is_at_least_the_single_task_models():
    runs = [_run(seed) for seed in range(3)]
    multi = np.mean([r[0] for r in runs])
    single = np.mean([r[1] for r in runs])
    # the tolerance: two standard errors of the mean AUC difference over the seeds, each AUC's
    # error from the class counts the generator gives the test rows (Hanley & McNeil), the
    # two AUCs taken as independent (they share their rows, so this over-states the noise)
    se = math.sqrt(sum(2 * _hanley_mcneil_se(single, positives, negatives) ** 2
                       for _, _, positives, negatives, _, _ in runs)) / len(runs)
    assert multi >= single - 2 * se, (multi, single, se)
    for *_, before, after in runs:
        assert (after < before).all(), (before, after)  # each task's loss decreased
