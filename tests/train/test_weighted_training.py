"""Row weights in training: a row of integer weight k is that row k times, in the loss, in one
update and in the Trainer's reported loss (float64)."""

import pytest
import torch

from crossrank.models import FeatureSchema, build_model, loss_fn
from crossrank.train.config import TrainConfig
from crossrank.train.inmemory import TensorSource
from crossrank.train.loop import Trainer
from crossrank.train.step import TrainStep
from tolerances import TOLERANCES

RTOL, ATOL = TOLERANCES[torch.float64]
SCHEMA = FeatureSchema(dense=("a", "b"), categorical=("u", "v"), vocab_sizes=(20, 30),
                       embedding_dim=4)


def _batch(rows=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, 2, generator=g, dtype=torch.float64)
    ids = torch.stack([torch.randint(0, 20, (rows,), generator=g),
                       torch.randint(0, 30, (rows,), generator=g)], 1)
    label = torch.bernoulli(torch.full((rows,), 0.4, dtype=torch.float64), generator=g)
    weight = torch.randint(0, 4, (rows,), generator=g).to(torch.float64)
    weight[0] = 2.0
    return dense, ids, label, weight


def _model(task="binary"):
    torch.manual_seed(0)
    # no dropout (its masks differ between a weighted row and its repeats) and no
    # per-occurrence embedding L2: the defaults these identities were written for
    return build_model("dcn", SCHEMA, {"deep_layers": [8], "cross.rank": 2, "dropout": 0.0,
                                       "embedding_l2": 0.0, "sparse_gradients": True,
                                       "terms": {"fm_l2": 0.0}},
                       task=task).double()


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_weighted_loss_equals_the_loss_of_repeated_rows(task):
    dense, ids, label, weight = _batch()
    logits = torch.randn(len(label), dtype=torch.float64)
    k = weight.long()
    assert torch.allclose(loss_fn(task, logits, label, weight),
                          loss_fn(task, logits.repeat_interleave(k), label.repeat_interleave(k)),
                          rtol=RTOL, atol=ATOL)
    assert float(loss_fn(task, logits, label, torch.zeros_like(weight))) == 0.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_update_with_weight_k_equals_the_row_k_times(optimizer):
    dense, ids, label, weight = _batch()
    k = weight.long()
    config = TrainConfig(lr=0.05, optimizer=optimizer, grad_clip=None)
    weighted, repeated = _model(), _model()
    TrainStep(weighted, config)(dense, ids, label, step=0, total_steps=1, sample_weight=weight)
    TrainStep(repeated, config)(dense.repeat_interleave(k, 0), ids.repeat_interleave(k, 0),
                                label.repeat_interleave(k), step=0, total_steps=1)
    changed = 0
    for (name, a), b, before in zip(weighted.state_dict().items(), repeated.state_dict().values(),
                                    _model().state_dict().values()):
        assert torch.allclose(a, b, rtol=RTOL, atol=ATOL), name
        changed += not torch.equal(a, before)
    assert changed > 3  # the update did something


def test_trainer_reports_the_weighted_mean_loss():
    dense, ids, label, weight = _batch(64, seed=3)
    k = weight.long()
    config = TrainConfig(lr=0.05, epochs=1, batch_size=1000, progress=False)  # one update
    weighted = Trainer(_model(), config, verbose=False).fit(
        TensorSource(dense, label, sparse=ids, weights=weight), None)
    repeated = Trainer(_model(), config, verbose=False).fit(
        TensorSource(dense.repeat_interleave(k, 0), label.repeat_interleave(k),
                     sparse=ids.repeat_interleave(k, 0)), None)
    assert weighted.history[0]["train_loss"] == pytest.approx(
        repeated.history[0]["train_loss"], rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_quality_flags_count_weighted_rows_as_repeats(task):
    import numpy as np

    from crossrank.train.health import quality_flags
    from crossrank.train.metrics import compute_metrics

    labels = np.array([1.0, 0.0, 0.0, 0.0])
    weights = np.array([5.0, 1.0, 1.0, 1.0])  # weighted mean label 5/8, unweighted 1/4
    # the first worse than predicting 5/8 for every row; the second better than that, though
    # worse than predicting the unweighted 1/4 (log-loss 0.625 vs H(1/4) = 0.562; RMSE 0.465
    # vs the unweighted spread 0.433)
    for scores in (np.full(4, 0.3), np.array([0.5, 0.4, 0.4, 0.4])):
        flags = quality_flags(task, scores, labels,
                              compute_metrics(task, scores, labels, weights), weights)
        k = weights.astype(int)
        rs, ry = np.repeat(scores, k), np.repeat(labels, k)
        assert flags == quality_flags(task, rs, ry, compute_metrics(task, rs, ry))
        assert flags.get("worse_than_constant", False) == (scores[0] == 0.3)
