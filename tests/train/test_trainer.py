"""Trainer: resume equals an uninterrupted run, determinism, early stopping, sparse updates,
checkpoints without pickle, metrics on the whole set."""

import json
import pickle

import numpy as np
import pytest
import torch

from crossrank.models import FeatureSchema, build_model
from crossrank.train.checkpoint import load_model
from crossrank.train.config import TrainConfig
from crossrank.train.loop import Trainer, evaluate
from crossrank.train.metrics import compute_metrics
from crossrank.train.optim import build_optimizer

SCHEMA = FeatureSchema(dense=("a", "b"), categorical=("u", "v"), vocab_sizes=(20, 30), embedding_dim=4)


class ArrayData:
    """Minimal in-memory BatchSource, independent of crossrank.data."""

    def __init__(self, dense, sparse, label):
        self.dense, self.sparse, self.label = dense, sparse, label

    def __len__(self):
        return len(self.label)

    def iter_batches(self, batch_size, *, shuffle, seed):
        order = (np.random.default_rng(seed).permutation(len(self)) if shuffle
                 else np.arange(len(self)))
        for start in range(0, len(self), batch_size):
            idx = torch.from_numpy(order[start:start + batch_size])
            yield self.dense[idx], self.sparse[idx], self.label[idx], None


def _data(rows=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, 2, generator=g)
    sparse = torch.stack([torch.randint(0, 20, (rows,), generator=g),
                          torch.randint(0, 30, (rows,), generator=g)], 1)
    logit = 3 * (sparse[:, 0] % 2 == sparse[:, 1] % 2).float() - 1.5 + dense[:, 0]
    label = torch.bernoulli(torch.sigmoid(logit), generator=g)
    return ArrayData(dense, sparse, label)


def _model(**overrides):
    torch.manual_seed(0)
    return build_model("dcn", SCHEMA, {"deep_layers": [16], "dropout": 0.2, "cross.rank": 2,
                                       "sparse_gradients": True, **overrides})


def _config(**overrides):
    return TrainConfig(**{"epochs": 4, "batch_size": 64, "lr": 0.01, "patience": 10,
                          "progress": False, **overrides})


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    train, valid = _data(), _data(200, seed=1)
    full = _model()
    Trainer(full, _config(), out_dir=tmp_path / "full").fit(train, valid)

    torch.manual_seed(123)  # the interrupted process's RNG state must not matter
    part = _model()
    Trainer(part, _config(), out_dir=tmp_path / "part").fit(train, valid, stop_after_epochs=2)
    resumed = _model()
    torch.manual_seed(999)
    result = Trainer(resumed, _config(), out_dir=tmp_path / "part").fit(train, valid, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_same_seed_same_weights_on_cpu(tmp_path):
    models = []
    for run in ("a", "b"):
        m = _model()
        Trainer(m, _config(epochs=2), out_dir=tmp_path / run).fit(_data(), None)
        models.append(m)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)


def test_early_stopping_restores_the_best_weights(tmp_path):
    train, valid = _data(), _data(200, seed=1)
    model = _model(deep_layers=[64, 64], dropout=0.0)
    # A learning rate high enough to overfit/oscillate, with patience 0.
    result = Trainer(model, _config(epochs=30, lr=0.05, patience=0),
                     out_dir=tmp_path).fit(train, valid)
    assert result.stopped_early and len(result.history) < 30
    best = min(h["valid"]["logloss"] for h in result.history)
    assert result.best_metrics["logloss"] == best
    # The model in memory and the saved model are the best epoch's, not the last one's.
    assert evaluate(model, valid)["logloss"] == pytest.approx(best, rel=1e-6)
    loaded, meta = load_model(tmp_path)
    assert evaluate(loaded, valid)["logloss"] == pytest.approx(best, rel=1e-6)
    assert meta["epoch"] == result.best_epoch
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [h["epoch"] for h in result.history]


def test_checkpoint_loads_without_pickle(tmp_path, monkeypatch):
    model = _model()
    Trainer(model, _config(epochs=1), out_dir=tmp_path).fit(_data(), None)

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used while loading a model")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded, meta = load_model(tmp_path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert meta["model"]["name"] == "dcn"
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*.tmp*"))


def test_sparse_updates_touch_only_the_rows_in_the_batch():
    model = _model(dropout=0.0)
    opt = build_optimizer(model, "adam", 0.1)
    assert len(opt.optimizers) == 2  # dense Adam + SparseAdam for the table
    before = model.embedding.table.weight.detach().clone()
    sparse = torch.tensor([[1, 2], [3, 2]])
    loss = model(torch.rand(2, 2), sparse).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = (model.embedding.table.weight.detach() != before).any(dim=1).nonzero().flatten()
    assert changed.tolist() == [1, 3, 20 + 2]


def test_metrics_against_hand_computation():
    s = np.array([0.9, 0.2, 0.6, 0.4])
    y = np.array([1, 0, 0, 1])
    m = compute_metrics("binary", s, y)
    # Pairs (pos, neg): (0.9, 0.2) ok, (0.9, 0.6) ok, (0.4, 0.2) ok, (0.4, 0.6) wrong -> 3/4.
    assert m["auc"] == 0.75
    expected_ll = -np.mean(np.log([0.9, 0.8, 0.4, 0.4]))
    assert m["logloss"] == pytest.approx(expected_ll, rel=1e-12)
    assert m["accuracy"] == 0.5
    r = compute_metrics("regression", np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    assert r["rmse"] == pytest.approx(np.sqrt(2.5))


def test_evaluate_uses_every_row_not_a_batch_average():
    data = _data(300)
    model = _model()
    m_small = evaluate(model, data, batch_size=7)
    m_large = evaluate(model, data, batch_size=1000)
    assert m_small["auc"] == pytest.approx(m_large["auc"], abs=1e-12)
    assert m_small["rows"] == 300


@pytest.mark.parametrize("kwargs, match", [({"lr": 0}, "lr"), ({"monitor": "f1"}, "monitor"),
                                           ({"valid_fraction": 1.0}, "valid_fraction"),
                                           ({"optimizer": "lbfgs"}, "optimizer")])
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown option 'training.epocs'; did you mean "
                                         "'training.epochs'"):
        TrainConfig.from_dict({"epocs": 3})


def test_training_data_without_labels_is_a_clear_error(tmp_path):
    from crossrank.data import EncodedDataset

    unlabelled = EncodedDataset.from_arrays(np.random.rand(8, 2).astype(np.float32),
                                            np.random.randint(0, 20, (8, 2)))
    trainer = Trainer(build_model("dnn", SCHEMA, {"deep_layers": [4]}),
                      TrainConfig(epochs=1, progress=False), out_dir=tmp_path, verbose=False)
    with pytest.raises(ValueError, match="training data has no label column"):
        trainer.fit(unlabelled, None)
