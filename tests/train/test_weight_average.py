"""training.ema_decay: the exponential moving average of the weights (train/averaging.py)."""

import pytest
import torch

from crossrank.errors import ConfigError
from crossrank.models import FeatureSchema, build_model
from crossrank.train.averaging import REGRESSION_EMA_DECAY, WeightAverage, resolve_ema_decay
from crossrank.train.checkpoint import load_tensors
from crossrank.train.config import TrainConfig
from crossrank.train.inmemory import TensorSource
from crossrank.train.loop import Trainer
from tests.tolerances import TOLERANCES

SCHEMA = FeatureSchema(dense=("a", "b"), categorical=("u", "v"), vocab_sizes=(20, 30),
                       embedding_dim=4)
DECAY = 0.9


def _data(rows=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, 2, generator=g, dtype=torch.float64)
    sparse = torch.stack([torch.randint(0, 20, (rows,), generator=g),
                          torch.randint(0, 30, (rows,), generator=g)], 1)
    logit = 3 * (sparse[:, 0] % 2 == sparse[:, 1] % 2).double() - 1.5 + dense[:, 0]
    label = torch.bernoulli(torch.sigmoid(logit), generator=g)
    return TensorSource(dense, label, sparse=sparse)


def _model(**overrides):
    torch.manual_seed(0)
    return build_model("dcn", SCHEMA, {"deep_layers": [16], "dropout": 0.2, "cross.rank": 2,
                                       "norm": "batch", "sparse_gradients": True,
                                       **overrides}).double()


def _config(**overrides):
    return TrainConfig(**{"epochs": 3, "batch_size": 64, "lr": 0.01, "patience": 10,
                          "ema_decay": DECAY, "progress": False, **overrides})


def _explicit_ema(history, decay):
    """sum_i d^(t-i) w_i / sum_i d^(t-i) over the history w_1..w_t, entry by entry."""
    t = len(history)
    norm = sum(decay ** (t - i) for i in range(1, t + 1))
    return {name: sum(decay ** (t - i) * w[name] for i, w in enumerate(history, start=1)) / norm
            for name in history[0] if history[0][name].is_floating_point()}


def _fit_recording(model, config, train, valid=None, **kwargs):
    """Fit, recording the model's state after every update (the trainer's step, wrapped)."""
    history = []
    trainer = Trainer(model, config, verbose=False, **kwargs)
    step = trainer.train_step

    def recorded(*args, **kw):
        loss = step(*args, **kw)
        history.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return loss

    trainer.train_step = recorded
    return trainer.fit(train, valid), history


def test_average_is_the_normalized_ema_of_the_weights_history():
    # float64: the recurrence against the explicit weighted mean, on every weight and on
    # batch norm's running statistics (averaged the same way)
    model = _model()
    _, history = _fit_recording(model, _config(), _data(), keep_best=False)
    assert len(history) == 3 * 5  # 3 epochs of 300 rows in batches of 64
    expected = _explicit_ema(history, DECAY)
    got = model.state_dict()
    rtol, atol = TOLERANCES[torch.float64]
    assert any("running_mean" in name for name in expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=rtol, atol=atol, msg=name)
    # an integer buffer is the live one, not averaged
    for name, value in got.items():
        if not value.is_floating_point():
            assert torch.equal(value, history[-1][name]), name


def test_first_update_is_the_weights_themselves():
    m = torch.nn.Linear(2, 1).double()
    avg = WeightAverage(m, decay=0.999)
    with torch.no_grad():
        m.weight.add_(1.0)
    avg.update()
    assert torch.equal(avg.state_dict()["weight"], m.weight)


def test_validation_and_saved_model_use_the_average_latest_the_live_weights(tmp_path):
    train, valid = _data(), _data(100, seed=1)
    model = _model()
    result, history = _fit_recording(model, _config(epochs=1), train, valid, out_dir=tmp_path)
    assert result.best_epoch == 1
    expected = _explicit_ema(history, DECAY)
    saved, latest = load_tensors(tmp_path / "model.safetensors"), \
        load_tensors(tmp_path / "latest.safetensors")
    rtol, atol = TOLERANCES[torch.float64]
    for name, value in expected.items():
        torch.testing.assert_close(saved[name], value, rtol=rtol, atol=atol, msg=name)
        torch.testing.assert_close(model.state_dict()[name], value, rtol=rtol, atol=atol)
        assert torch.equal(latest[name], history[-1][name]), name


def test_resume_continues_the_average_identically(tmp_path):
    train, valid = _data(), _data(100, seed=1)
    full = _model()
    Trainer(full, _config(), out_dir=tmp_path / "full", verbose=False).fit(train, valid)
    part = _model()
    Trainer(part, _config(), out_dir=tmp_path / "part", verbose=False).fit(
        train, valid, stop_after_epochs=1)
    resumed = _model()
    torch.manual_seed(999)
    result = Trainer(resumed, _config(), out_dir=tmp_path / "part", verbose=False).fit(
        train, valid, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    for name in ("model.safetensors", "latest.safetensors"):
        a, b = load_tensors(tmp_path / "full" / name), load_tensors(tmp_path / "part" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_of_a_run_without_an_average_is_an_error(tmp_path):
    train = _data()
    Trainer(_model(), _config(ema_decay=None), out_dir=tmp_path, verbose=False).fit(
        train, None, stop_after_epochs=1)
    with pytest.raises(ValueError, match="kept no weight average"):
        Trainer(_model(), _config(), out_dir=tmp_path, verbose=False).fit(
            train, None, resume=True)


@pytest.mark.parametrize("decay", [1.0, -0.5, 1.5])
def test_bad_ema_decay_is_one_line(decay):
    with pytest.raises(ConfigError, match=rf"^ema_decay must be in \[0, 1\) \(0: no average\) "
                                          rf"or none \(by the task\), got {decay}$"):
        TrainConfig(ema_decay=decay)


def test_ema_decay_is_a_training_option_of_config_files():
    assert TrainConfig.from_dict({"ema_decay": 0.99}).ema_decay == 0.99
    assert TrainConfig.from_dict({"ema_decay": 0}).ema_decay == 0  # no average
    assert TrainConfig().ema_decay is None  # by the task
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        TrainConfig.from_dict({"ema_decay": 1})


@pytest.mark.parametrize("tasks, given, used", [
    (["regression"], None, REGRESSION_EMA_DECAY),  # the default: averaged
    (["binary"], None, None),  # the default: not averaged
    (["regression", "regression"], None, REGRESSION_EMA_DECAY),
    (["binary", "regression"], None, None),  # mixed: as binary
    (["regression"], 0.0, None),  # 0: no average, whatever the task
    (["binary"], 0.9, 0.9),  # a decay given is used as given
    (["regression"], 0.9, 0.9),
])
def test_the_default_average_is_decided_by_the_task(tasks, given, used):
    assert resolve_ema_decay(given, tasks) == used


@pytest.mark.parametrize("task, given, averaged", [
    ("regression", None, True), ("binary", None, False), ("regression", 0.0, False)])
def test_the_trainer_averages_a_regression_run_by_default(task, given, averaged):
    torch.manual_seed(0)
    model = build_model("dcn", SCHEMA, {"deep_layers": [8], "cross.rank": 2},
                        task=task).double()
    trainer = Trainer(model, _config(ema_decay=given, epochs=1), verbose=False)
    assert (trainer.average is not None) == averaged
    if averaged:
        assert trainer.average.decay == REGRESSION_EMA_DECAY
        assert trainer.ema_decay == REGRESSION_EMA_DECAY


def test_ema_decay_can_be_searched_by_crossrank_tune():
    from crossrank.tune.space import build_space

    space = build_space({"space": {"training.ema_decay": [0, 0.99, 0.999]},
                         "default_space": False}, {"data": {"path": "x.tsv"}})
    assert [(p.key, p.choices) for p in space.params] == [("training.ema_decay",
                                                           (0, 0.99, 0.999))]
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        build_space({"space": {"training.ema_decay": [0.99, 1.5]}, "default_space": False},
                    {"data": {"path": "x.tsv"}})
