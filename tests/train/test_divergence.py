"""A run that diverges stops and says so: real training on rows that overflow, at learning
rates far too high; nothing non-finite is ever applied or checkpointed."""

import json
import math

import pytest
import torch

from crossrank.errors import ConfigError, DivergedError
from crossrank.models import FeatureSchema, build_model
from crossrank.train.checkpoint import load_tensors
from crossrank.train.config import TrainConfig
from crossrank.train.loop import Trainer

ROWS, BATCH = 256, 64  # 4 updates an epoch
POISON = 1e20  # finite in float32; its square (in the MSE) is not


class FixedOrder:
    """A BatchSource that visits its rows in stored order every epoch, so the update that
    meets a given row is known: row r is in update r // batch_size + 1."""

    def __init__(self, dense, label):
        self.dense, self.label = dense, label

    def __len__(self):
        return len(self.label)

    def iter_batches(self, batch_size, *, shuffle, seed):
        for start in range(0, len(self), batch_size):
            yield (self.dense[start:start + batch_size], None,
                   self.label[start:start + batch_size], None)


def _data(rows=ROWS, seed=0, poison=()):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, 2, generator=g)
    label = 3 * dense[:, 0] - 2 * dense[:, 1] + 0.1 * torch.randn(rows, generator=g)
    for row in poison:
        dense[row, 0] = POISON
    return FixedOrder(dense, label)


def _model():
    torch.manual_seed(0)
    return build_model("dcn", FeatureSchema(dense=("a", "b")),
                       {"deep_layers": [8], "cross.rank": 2, "cross.num_layers": 3, "dropout": 0.0},
                       task="regression")


def _config(**overrides):
    return TrainConfig(**{"epochs": 3, "batch_size": BATCH, "lr": 1e-2, "patience": 10,
                          "progress": False, **overrides})


def _finite(state):
    return all(bool(torch.isfinite(t).all()) for t in state.values())


def test_a_non_finite_loss_stops_at_its_update_and_names_it(tmp_path):
    model = _model()
    with pytest.raises(DivergedError) as info:
        Trainer(model, _config(), out_dir=tmp_path, verbose=False).fit(
            _data(poison=[150]), _data(64, seed=1))
    message = str(info.value)
    assert message.startswith("training diverged in epoch 1, update 3 of 4: the loss is ")
    assert "stopped without applying it" in message and "\n" not in message
    assert message.endswith("; no model was written")
    assert not (tmp_path / "model.safetensors").exists()
    assert _finite(model.state_dict())  # the update of the overflowing batch never applied


def test_divergence_in_a_later_epoch_leaves_every_checkpoint_as_it_was(tmp_path):
    valid = _data(64, seed=1)
    Trainer(_model(), _config(), out_dir=tmp_path, verbose=False).fit(
        _data(), valid, stop_after_epochs=1)
    files = ("model.safetensors", "model.json", "latest.safetensors", "state.json",
             "metrics.jsonl")
    before = {name: (tmp_path / name).read_bytes() for name in files}
    model = _model()
    # the resumed epoch 2 meets a row that overflows
    with pytest.raises(DivergedError, match=r"^training diverged in epoch 2, update 1 of 4: "
                       r"the loss is .*holds epoch 1's weights, the best before$"):
        Trainer(model, _config(), out_dir=tmp_path, verbose=False).fit(
            _data(poison=[5]), valid, resume=True)
    assert {name: (tmp_path / name).read_bytes() for name in files} == before
    # the model in memory is the checkpoint's too
    best = load_tensors(tmp_path / "model.safetensors")
    assert _finite(best)
    for key, value in model.state_dict().items():
        assert torch.equal(value, best[key]), key


def test_skip_leaves_out_the_non_finite_update_counts_it_and_trains_on(tmp_path, capsys):
    model = _model()
    result = Trainer(model, _config(on_nonfinite="skip"), out_dir=tmp_path).fit(
        _data(poison=[100]), _data(64, seed=1))
    assert result.skipped_steps == 3 and result.best_epoch >= 1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records] == [1, 1, 1]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["valid"]["rmse"])
               for r in records)
    assert _finite(load_tensors(tmp_path / "model.safetensors"))
    out = capsys.readouterr().out
    assert "skipped 1 updates (non-finite)" in out
    assert "skipped 3 of 12 updates for a NaN or infinite loss or gradient" in out


def test_skipping_more_than_one_update_in_100_stops(tmp_path):
    # 4 updates an epoch: 1 may be skipped; the second stops the run
    with pytest.raises(DivergedError, match=r"^training diverged in epoch 1, update 4 of 4: the "
                       r"loss is .*; 2 of its updates so far were skipped .*more than 1 "):
        Trainer(_model(), _config(on_nonfinite="skip"), out_dir=tmp_path, verbose=False).fit(
            _data(poison=[10, 200]), _data(64, seed=1))
    assert not (tmp_path / "model.safetensors").exists()


def test_an_update_that_overflows_the_weights_is_never_checkpointed(tmp_path):
    # SGD at lr 3.4e38, float32's largest: the one update of epoch 1 has a finite loss and
    # gradient, but lr * g overflows the weights wherever |g| > 1 (labels ~100 make the first
    # gradients ~50)
    train = _data()
    train.label = 100 * train.label
    with pytest.raises(DivergedError, match=r"^training diverged in epoch 1: after its updates "
                       r"\d+ weight tensor\(s\) hold NaN or infinite values .*no model was"):
        Trainer(_model(), _config(optimizer="sgd", lr=3.4e38, batch_size=ROWS), out_dir=tmp_path,
                verbose=False).fit(train, _data(64, seed=1))
    assert not (tmp_path / "model.safetensors").exists()


def test_a_validation_metric_that_is_never_finite_is_never_an_improvement(tmp_path):
    with pytest.raises(DivergedError, match=r"^no epoch's validation rmse was finite \((inf|nan)"
                       r".*no model was written$"):
        Trainer(_model(), _config(epochs=2), out_dir=tmp_path, verbose=False).fit(
            _data(), _data(64, seed=1, poison=[3]))
    assert not (tmp_path / "model.safetensors").exists()


def test_a_run_that_never_beats_epoch_1_says_so(tmp_path, capsys):
    # validation rows that are all the same row, half of them clicks: every model scores them
    # alike, so the validation AUC is 0.5 in every epoch and never beats epoch 1's
    torch.manual_seed(0)
    model = build_model("dcn", FeatureSchema(dense=("a", "b")),
                        {"deep_layers": [8], "cross.rank": 2}, task="binary")
    train = _data()
    train.label = (train.label > 0.5).float()
    valid = FixedOrder(torch.full((8, 2), 0.5), torch.tensor([0.0, 1.0] * 4))
    result = Trainer(model, _config(epochs=3, monitor="auc"), out_dir=tmp_path).fit(train, valid)
    assert [h["valid"]["auc"] for h in result.history] == [0.5, 0.5, 0.5]
    assert result.best_epoch == 1 and result.never_improved
    assert result.no_better_than_constant  # the same score for every row
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["never_improved"] is True and meta["epoch"] == 1
    out = capsys.readouterr().out
    assert "the validation auc never improved on epoch 1's 0.5 in 3 epochs; the model is " \
           "epoch 1's" in out
    assert "gives every validation row the same score" in out


def test_a_run_that_improves_is_not_flagged(tmp_path):
    result = Trainer(_model(), _config(), out_dir=tmp_path, verbose=False).fit(
        _data(), _data(64, seed=1))
    assert result.best_epoch > 1 and not result.never_improved
    assert not result.no_better_than_constant and result.skipped_steps == 0
    assert json.loads((tmp_path / "model.json").read_text())["never_improved"] is False


def test_device_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="device must be cpu, cuda or cuda:N, got 'gpu'"):
        TrainConfig(device="gpu")
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda:99' is not available"):
            TrainConfig(device="cuda:99")
    else:
        with pytest.raises(ConfigError, match="device 'cuda' is not available: "):
            TrainConfig(device="cuda")
