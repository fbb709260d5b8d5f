"""One training loop: the Trainer, fit_tensors and the benchmark make the same updates, and the
loss they report is the task loss alone."""

import copy
import dataclasses

import pytest
import torch

from crossrank.models import DCN, CrossConfig, DCNConfig, FeatureSchema, build_model, loss_fn
from crossrank.train.config import TrainConfig
from crossrank.train.inmemory import InMemoryFitConfig, TensorSource, fit_tensors
from crossrank.train.loop import Trainer
from crossrank.train.throughput import measure

SCHEMA = FeatureSchema(dense=("a", "b"), categorical=("u", "v"), vocab_sizes=(20, 30),
                       embedding_dim=4)


def _tensors(rows=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, 2, generator=g)
    ids = torch.stack([torch.randint(0, 20, (rows,), generator=g),
                       torch.randint(0, 30, (rows,), generator=g)], 1)
    logit = 3 * (ids[:, 0] % 2 == ids[:, 1] % 2).float() - 1.5 + dense[:, 0]
    return dense, ids, torch.bernoulli(torch.sigmoid(logit), generator=g)


def _model(**overrides):
    torch.manual_seed(0)
    return build_model("dcn", SCHEMA, {"deep_layers": [8], "dropout": 0.1, "cross.rank": 2,
                                       "sparse_gradients": True, "cross.l2": 0.5, **overrides})


def _assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def _without_timing(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}
            for h in history]


def test_reported_loss_is_the_mean_task_loss_without_the_regularizer():
    torch.manual_seed(0)
    model = DCN(FeatureSchema(dense=("x1", "x2")),
                DCNConfig(structure="cross_only", cross=CrossConfig(num_layers=2, l2=10.0)),
                task="regression")
    replica = copy.deepcopy(model)
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(1))
    y = x[:, 0] * x[:, 1]
    [reported] = fit_tensors(model, x, y, config=InMemoryFitConfig(
        optimizer="sgd", lr=0.01, epochs=1, batch_size=16, seed=5))

    # the same epoch by hand: plain SGD on task loss + penalty, in the source's order
    opt = torch.optim.SGD(replica.parameters(), lr=0.01)
    task_sum = penalty_sum = 0.0
    for dense, sparse, label, _ in TensorSource(x, y, seed=5).iter_batches(16, shuffle=True,
                                                                         seed=5):
        assert sparse is None
        task = loss_fn("regression", replica(dense), label)
        penalty = replica.regularization()
        task_sum += float(task.detach()) * len(label)
        penalty_sum += float(penalty.detach()) * len(label)
        opt.zero_grad()
        (task + penalty).backward()
        opt.step()
    assert penalty_sum > task_sum  # loss + penalty would be more than twice the task loss
    assert reported == pytest.approx(task_sum / len(y), rel=1e-5)
    for a, b in zip(model.parameters(), replica.parameters()):  # the penalty was trained on
        torch.testing.assert_close(a, b)


def test_fit_tensors_is_the_trainer_on_a_tensor_source(tmp_path):
    dense, ids, labels = _tensors()
    by_fit = _model()
    losses = fit_tensors(by_fit, dense, labels, sparse=ids, config=InMemoryFitConfig(
        optimizer="adam", lr=0.01, epochs=3, batch_size=32, schedule="cosine", seed=7))

    by_trainer = _model()
    config = TrainConfig(optimizer="adam", lr=0.01, epochs=3, batch_size=32, schedule="cosine",
                         seed=7, patience=3, progress=False)
    result = Trainer(by_trainer, config, out_dir=tmp_path, verbose=False,
                     keep_best=False).fit(TensorSource(dense, labels, sparse=ids, seed=7), None)
    assert [h["train_loss"] for h in result.history] == losses
    _assert_same_weights(by_fit, by_trainer)


def test_the_benchmark_times_the_trainers_step():
    dense, ids, labels = _tensors()
    config = TrainConfig(optimizer="adam", lr=0.05, epochs=1, batch_size=32, schedule="cosine",
                         warmup_steps=2, grad_clip=0.1, weight_decay=1e-3, seed=3,
                         progress=False)
    source = TensorSource(dense, labels, sparse=ids, seed=3)
    batches = list(source.iter_batches(32, shuffle=True, seed=3))  # the Trainer's epoch 0

    benched = _model()
    torch.manual_seed(11)  # dropout
    assert measure(benched, batches, config=config, steps=len(batches), warmup=0) > 0
    trained = _model()
    torch.manual_seed(11)
    Trainer(trained, config, verbose=False).fit(source, None)
    _assert_same_weights(benched, trained)
    # and the settings matter: without clipping the updates differ
    unclipped = _model()
    torch.manual_seed(11)
    measure(unclipped, batches, config=dataclasses.replace(config, grad_clip=None),
            steps=len(batches), warmup=0)
    assert not all(torch.equal(x, y) for x, y in zip(unclipped.state_dict().values(),
                                                     benched.state_dict().values()))


def test_trainer_without_out_dir_writes_nothing_and_keeps_the_best_weights(tmp_path,
                                                                            monkeypatch):
    dense, ids, labels = _tensors(300)
    valid_dense, valid_ids, valid_labels = _tensors(100, seed=1)
    valid = TensorSource(valid_dense, valid_labels, sparse=valid_ids)
    config = TrainConfig(epochs=12, lr=0.2, batch_size=32, patience=1, progress=False)
    on_disk, in_memory = _model(deep_layers=[32, 32]), _model(deep_layers=[32, 32])
    torch.manual_seed(2)
    a = Trainer(on_disk, config, out_dir=tmp_path / "run", verbose=False).fit(
        TensorSource(dense, labels, sparse=ids), valid)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    torch.manual_seed(2)
    b = Trainer(in_memory, config, verbose=False).fit(TensorSource(dense, labels, sparse=ids),
                                                      valid)
    assert not list(work.iterdir())
    assert _without_timing(a.history) == _without_timing(b.history)
    assert a.best_epoch == b.best_epoch < len(b.history)  # the last epoch was not the best
    _assert_same_weights(on_disk, in_memory)
    with pytest.raises(ValueError, match="out_dir"):
        Trainer(in_memory, config).fit(TensorSource(dense, labels, sparse=ids), None,
                                       resume=True)


def test_tensor_source_orders_depend_only_on_the_seed():
    x = torch.arange(10.0).unsqueeze(1)

    def order(source, seed):
        return [int(v) for d, _, _, _ in source.iter_batches(4, shuffle=True, seed=seed)
                for v in d[:, 0]]

    in_turn = TensorSource(x, x[:, 0], seed=2)
    orders = [order(in_turn, s) for s in (2, 3, 4)]
    assert all(sorted(o) == list(range(10)) for o in orders) and orders[0] != orders[1]
    out_of_turn = TensorSource(x, x[:, 0], seed=2)
    assert [order(out_of_turn, s) for s in (4, 2, 3, 3)] == [orders[2], orders[0], orders[1],
                                                              orders[1]]
    with pytest.raises(ValueError, match="seed must be >= the source's seed 2"):
        order(in_turn, 1)
    with pytest.raises(ValueError, match="labels"):
        TensorSource(x, x)


def test_the_step_takes_every_optimizer_option_from_the_train_config():
    model = _model(**{"terms.first_order": True})
    config = TrainConfig(optimizer="sgd", lr=0.1, sparse_lr=0.2, weight_decay=0.01,
                         lr_scales={"first_order": 30.0})
    trainer = Trainer(model, config)
    # the sparse tables' row-wise optimizers have no weight decay option at all
    lr_of = {id(p): (g["lr"], g.get("weight_decay", 0)) for opt in trainer.optimizer.optimizers
             for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model.first_order.dense_weight)] == (pytest.approx(3.0), 0.01)
    assert lr_of[id(model.embedding.table.weight)] == (pytest.approx(0.2), 0)  # sparse: no decay
    assert lr_of[id(next(model.deep.parameters()))] == (pytest.approx(0.1), 0.01)
