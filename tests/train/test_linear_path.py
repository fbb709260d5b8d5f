"""The linear family's solver against references in float64: a Newton solve of the same
objective and scikit-learn's LogisticRegression (binary), the ridge closed form (regression);
then the path as the Trainer runs it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from crossrank.errors import ConfigError
from crossrank.models import FeatureSchema, build_model
from crossrank.train import health
from crossrank.train.config import TrainConfig
from crossrank.train.inmemory import TensorSource
from crossrank.train.linear_path import fit_point, fit_scaling, path_c
from crossrank.train.loop import Trainer

SCHEMA = FeatureSchema(dense=("a", "b", "c"), categorical=("u", "v"), vocab_sizes=(6, 9))


def _data(rows: int, seed: int, *, task: str = "binary", weights: bool = False):
    g = torch.Generator().manual_seed(seed)
    # dense features of unlike scales and means: the model must standardize them
    dense = torch.randn(rows, 3, generator=g, dtype=torch.float64) \
        * torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64) + 2
    ids = torch.stack([torch.randint(0, 6, (rows,), generator=g),
                       torch.randint(0, 9, (rows,), generator=g)], 1)
    signal = 0.8 * (dense[:, 0] - 2) - 0.1 * dense[:, 1] + (ids[:, 0] == 2) - 0.7 * (ids[:, 1] % 3 == 0)
    if task == "binary":
        labels = (torch.rand(rows, generator=g, dtype=torch.float64)
                  < torch.sigmoid(signal)).to(torch.float64)
    else:
        labels = signal + 0.5 * torch.randn(rows, generator=g, dtype=torch.float64)
    w = torch.rand(rows, generator=g, dtype=torch.float64) * 2 if weights else None
    return dense, ids, labels, w


def _design(model, dense, ids) -> torch.Tensor:
    """[standardized dense, one-hot u, one-hot v]: the model's features as a matrix."""
    standard = (dense - model.dense_mean) / model.dense_scale
    onehots = [torch.nn.functional.one_hot(ids[:, f], n).to(torch.float64)
               for f, n in enumerate(SCHEMA.vocab_sizes)]
    return torch.cat([standard, *onehots], dim=1)


def _newton(x, y, s, c, task):
    """The module's objective minimized by Newton's method (float64, autograd Hessian)."""
    total = float(s.sum())

    def objective(theta):
        logits = x @ theta[1:] + theta[0]
        if task == "binary":
            per_row = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y, reduction="none")
        else:
            per_row = (logits - y) ** 2
        return (s * per_row).sum() / total + theta[1:].square().sum() / (2 * c * total)

    theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64)
    for _ in range(50):
        grad = torch.autograd.functional.jacobian(objective, theta)
        hess = torch.autograd.functional.hessian(objective, theta)
        theta = theta - torch.linalg.solve(hess, grad)
    return theta


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("c", [0.01, 0.3, 10.0])
def test_a_point_is_the_optimum_of_its_objective(task, weights, c):
    dense, ids, labels, w = _data(400, seed=int(c * 100) + weights, task=task, weights=weights)
    model = build_model("linear", SCHEMA, task=task).double()
    source = TensorSource(dense, labels, sparse=ids, weights=w)
    fit_scaling(model, source)
    fit_point(model, source, c=c)
    x = _design(model, dense, ids)
    s = torch.ones(len(labels), dtype=torch.float64) if w is None else w
    reference = _newton(x, labels, s, c, task)
    with torch.no_grad():
        ours = model(dense, ids)
    torch.testing.assert_close(ours, x @ reference[1:] + reference[0], atol=1e-6, rtol=1e-6)


def test_binary_points_equal_scikit_learns_logistic_regression():
    dense, ids, labels, _ = _data(600, seed=5)
    model = build_model("linear", SCHEMA).double()
    source = TensorSource(dense, labels, sparse=ids)
    fit_scaling(model, source)
    for c in (0.003, 0.1, 3.0):  # warm-started from the previous point, as along the path
        fit_point(model, source, c=c)
        x = _design(model, dense, ids).numpy()
        reference = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, labels.numpy())
        with torch.no_grad():
            ours = torch.sigmoid(model(dense, ids)).numpy()
        np.testing.assert_allclose(ours, reference.predict_proba(x)[:, 1], atol=1e-6)


def test_regression_points_equal_the_ridge_closed_form():
    dense, ids, labels, _ = _data(300, seed=6, task="regression")
    model = build_model("linear", SCHEMA, task="regression").double()
    source = TensorSource(dense, labels, sparse=ids)
    fit_scaling(model, source)
    c = 0.05
    fit_point(model, source, c=c)
    x = torch.cat([torch.ones(300, 1, dtype=torch.float64), _design(model, dense, ids)], 1)
    # mean (y - X t)^2 + |t_w|^2 / (2 C n): (X'X + I_w / (2 C)) t = X'y, the intercept free
    penalty = torch.eye(x.shape[1], dtype=torch.float64) / (2 * c)
    penalty[0, 0] = 0
    theta = torch.linalg.solve(x.T @ x + penalty, x.T @ labels)
    with torch.no_grad():
        torch.testing.assert_close(model(dense, ids), x @ theta, atol=1e-7, rtol=1e-7)


def test_the_trainer_walks_the_path_and_keeps_the_best_point():
    dense, ids, labels, _ = _data(500, seed=7)
    train = TensorSource(dense[:400].float(), labels[:400].float(), sparse=ids[:400])
    valid = TensorSource(dense[400:].float(), labels[400:].float(), sparse=ids[400:])
    model = build_model("linear", SCHEMA)
    config = TrainConfig(epochs=12, patience=2, progress=False, threads=1)
    result = Trainer(model, config, verbose=False).fit(train, valid)
    cs = [record["path_c"] for record in result.history]
    assert cs == [path_c(model, k) for k in range(len(cs))]
    assert math.isclose(cs[1] / cs[0], 10 ** 0.5)
    losses = [record["valid"]["logloss"] for record in result.history]
    assert result.best_metrics["logloss"] == min(losses)
    assert result.stopped_early and len(losses) == result.best_epoch + 3
    # the model ends at the best point: refitting the best C from scratch gives the same
    again = build_model("linear", SCHEMA)
    fit_scaling(again, train)
    fit_point(again, train, c=cs[result.best_epoch - 1])
    with torch.no_grad():
        torch.testing.assert_close(again(dense.float(), ids), model(dense.float(), ids),
                                   atol=1e-5, rtol=1e-5)


def test_the_scaling_is_set_once_and_a_constant_feature_keeps_scale_one():
    dense, ids, labels, _ = _data(50, seed=8)
    dense[:, 2] = 4.0
    model = build_model("linear", SCHEMA).double()
    fit_scaling(model, TensorSource(dense, labels, sparse=ids))
    assert bool(model.scaled) and float(model.dense_scale[2]) == 1.0
    torch.testing.assert_close(model.dense_mean, dense.mean(0))
    fit_scaling(model, TensorSource(dense + 100, labels, sparse=ids))  # already scaled
    torch.testing.assert_close(model.dense_mean, dense.mean(0))


def test_options_that_cannot_apply_are_one_line_errors():
    model = build_model("linear", SCHEMA)
    with pytest.raises(ConfigError, match="training.ema_decay 0.9 averages mini-batch updates"):
        Trainer(model, TrainConfig(ema_decay=0.9, progress=False), verbose=False)
    for bad, message in (({"path_ratio": 1.0}, "path_ratio must be > 1"),
                         ({"path_start": 0}, "path_start must be a number > 0"),
                         ({"max_iter": 0}, "max_iter must be an integer >= 1")):
        with pytest.raises(ConfigError, match=message):
            build_model("linear", SCHEMA, bad)


def test_the_end_of_run_notes_speak_of_the_path_not_a_learning_rate():
    history = [{"epoch": k, "train_loss": 0.6, "valid": {"logloss": v}}
               for k, v in ((1, 0.60), (2, 0.61), (3, 0.62))]
    history[0]["worse_than_constant"] = True
    linear = health.run_health(history, 1, monitor="logloss", has_valid=True, task="binary",
                               lr=None, steps_per_epoch=1)
    said = " ".join(linear.notes)
    assert "the path's strongest penalty was best: the data supports little more than the " \
           "intercept" in said and "no signal the validation rows confirm" in said
    assert "lr" not in said and "learning rate" not in said
    network = health.run_health(history, 1, monitor="logloss", has_valid=True, task="binary",
                                lr=1e-3, steps_per_epoch=1)
    assert "learning rate too high" in " ".join(network.notes)


def test_a_point_stopped_by_the_iteration_limit_says_so(capsys):
    dense, ids, labels, _ = _data(300, seed=10)
    train = TensorSource(dense.float(), labels.float(), sparse=ids)
    model = build_model("linear", SCHEMA, {"max_iter": 2})
    result = Trainer(model, TrainConfig(epochs=2, patience=5, progress=False, threads=1),
                     verbose=True).fit(train, None)
    assert [r["path_converged"] for r in result.history] == [False, False]
    assert [r["path_iterations"] for r in result.history] == [2, 2]
    assert "epoch 1 (C 0.001, not converged in 2 iterations: model.max_iter)" in \
        capsys.readouterr().out
    converged = Trainer(build_model("linear", SCHEMA), TrainConfig(epochs=1, progress=False,
                                                                  threads=1),
                        verbose=False).fit(train, None)
    assert converged.history[0]["path_converged"] and converged.history[0]["path_iterations"] > 2
