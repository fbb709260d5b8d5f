"""Multi-task models: every family under shared_bottom and mmoe, the masked task-weighted loss
against an explicit float64 loop, and the bad values as one-line errors."""

import math

import numpy as np
import pytest
import torch

from crossrank.errors import ConfigError
from crossrank.models import (
    FeatureSchema,
    build_model,
    list_models,
    model_from_spec,
    model_spec,
    multitask_loss,
)

SCHEMA = FeatureSchema(dense=("a", "b"), categorical=("u", "v"), vocab_sizes=(5, 6),
                       embedding_dim=4)
TASKS = ("binary", "regression")


def _options(name, arch):
    options = {"multitask.arch": arch, "multitask.num_experts": 2, "multitask.tower_layers": [8]}
    # no dropout (the defaults before 2026-12-01): the same weights give the same logits
    return options | ({"bottom_layers": [8, 4], "top_layers": [8]} if name == "dlrm" else
                      {"deep_layers": [8], "dropout": 0.0})


@pytest.mark.parametrize("arch", ["shared_bottom", "mmoe"])
@pytest.mark.parametrize("name", [n for n in list_models() if n != "linear"])
def test_every_family_is_a_multi_task_body(name, arch):
    torch.manual_seed(0)
    model = build_model(name, SCHEMA, _options(name, arch), task=TASKS)
    dense, cat = torch.rand(1, 2), torch.tensor([[4, 5]])
    logits = model(dense, cat)
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()  # batch 1: (B, T)
    loss, _ = multitask_loss(TASKS, model(torch.rand(6, 2), torch.randint(0, 5, (6, 2))),
                             torch.rand(6, 2).round())
    (loss + model.regularization()).backward()
    assert all(p.grad is not None for p in model.parameters())  # every part is used
    again = model_from_spec(model_spec(model))
    again.load_state_dict(model.state_dict())
    assert model_spec(again)["task"] == list(TASKS)
    torch.testing.assert_close(again(dense, cat), logits)


def test_mmoe_with_one_expert_is_shared_bottom_with_a_gate_of_one():
    torch.manual_seed(0)
    mmoe = build_model("dcn", SCHEMA, _options("dcn", "mmoe") | {"multitask.num_experts": 1},
                       task=TASKS)
    shared = build_model("dcn", SCHEMA, _options("dcn", "shared_bottom"), task=TASKS)
    state = {k.replace("experts.0.", "body."): v for k, v in mmoe.state_dict().items()
             if not k.startswith("gates.")}
    shared.load_state_dict(state)
    dense, cat = torch.rand(5, 2), torch.randint(0, 5, (5, 2))
    torch.testing.assert_close(mmoe(dense, cat), shared(dense, cat))  # softmax of one = 1


def _loop_loss(tasks, logits, labels, weights, task_weights):
    """The masked, weighted loss one row and one task at a time, in float64."""
    total, per_task = 0.0, []
    for t, task in enumerate(tasks):
        num = den = 0.0
        for i in range(len(logits)):
            y = float(labels[i][t])
            if math.isnan(y):
                continue
            z, w = float(logits[i][t]), float(weights[i])
            if task == "binary":
                p = 1 / (1 + math.exp(-z))
                loss = -(y * math.log(p) + (1 - y) * math.log(1 - p))
            else:
                loss = (z - y) ** 2
            num, den = num + w * loss, den + w
        per_task.append(num / den if den else 0.0)
        total += task_weights[t] * per_task[-1]
    return total, per_task


def test_the_masked_loss_is_the_explicit_float64_loop():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 3))
    labels = np.stack([rng.integers(0, 2, 40), rng.integers(0, 2, 40), rng.normal(size=40)],
                      axis=1).astype(float)
    labels[rng.random((40, 3)) < 0.4] = np.nan  # missing labels, masked per task
    labels[:, 1] = np.nan  # a task without any row in the batch: loss 0, no NaN
    weights = rng.integers(0, 4, 40).astype(float)
    tasks, a = ("binary", "binary", "regression"), (1.0, 0.5, 2.0)
    total, per_task = multitask_loss(tasks, torch.tensor(logits), torch.tensor(labels),
                                     torch.tensor(weights), a)
    want_total, want = _loop_loss(tasks, logits, labels, weights, a)
    assert per_task.dtype == torch.float64
    np.testing.assert_allclose(per_task.numpy(), want, rtol=1e-12)
    assert float(total) == pytest.approx(want_total, rel=1e-12)
    unweighted, _ = multitask_loss(tasks, torch.tensor(logits), torch.tensor(labels))
    assert float(unweighted) == pytest.approx(
        _loop_loss(tasks, logits, labels, np.ones(40), (1, 1, 1))[0], rel=1e-12)


def test_a_missing_label_gives_no_gradient_to_its_task():
    logits = torch.zeros(2, 2, requires_grad=True)
    total, _ = multitask_loss(("binary", "binary"), logits,
                              torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    total.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 1] != 0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("options, message", [
    ({"multitask.arch": "mmoe", "multitask.num_experts": 0}, "num_experts must be an integer"),
    ({"multitask.tower_layers": [0]}, "tower_layers must be integers >= 1"),
    ({"multitask.arch": "ple"}, "must be one of"),
    ({"terms.first_order": True}, "single-task logit terms"),
])
def test_bad_multi_task_options_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_model("dcn", SCHEMA, options, task=TASKS)
    assert "\n" not in str(err.value)


def test_multi_task_options_with_one_label_are_an_error_not_ignored():
    with pytest.raises(ConfigError, match="multitask.* options are for several labels"):
        build_model("dcn", SCHEMA, {"multitask.arch": "mmoe"}, task="binary")


def test_the_linear_model_takes_one_label():
    with pytest.raises(ConfigError, match="model 'linear' takes one label, got 2") as err:
        build_model("linear", SCHEMA, {}, task=TASKS)
    assert "\n" not in str(err.value)
