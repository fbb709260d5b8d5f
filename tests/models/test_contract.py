"""The same contract for every registered model (and each interaction/structure variant)."""

import json

import pytest
import torch

from crossrank.models import (
    DCN,
    DCNConfig,
    FeatureSchema,
    build_model,
    list_models,
    loss_fn,
    model_from_spec,
    model_spec,
    predict,
)

SCHEMA = FeatureSchema(dense=("i1", "i2", "i3"), sparse=("c1", "c2", "c3"),
                       vocab_sizes=(5, 7, 11), embedding_dim=4)
SMALL = {
    "dcn": {"deep_layers": [8]},
    "dcn-mix": {"deep_layers": [8], "rank": 3, "num_experts": 2},
    "dlrm": {"bottom_layers": [8, 4], "top_layers": [8]},
    "dnn": {"deep_layers": [8, 4]},
}
VARIANTS = [(name, SMALL[name]) for name in list_models()] + [
    ("dcn", {"structure": "parallel", "deep_layers": [8], "rank": 2}),
    ("dcn", {"structure": "cross_only", "cross_kind": "vector"}),
    ("dcn", {"structure": "stacked", "deep_layers": [8], "diag_scale": 0.1,
             "cross_activation": "relu", "rank": 3}),
    ("dlrm", {"bottom_layers": [8, 4], "top_layers": [8], "interaction": "dcn", "dcn_rank": 2}),
    ("dlrm", {"bottom_layers": [8, 4], "top_layers": [8], "interaction": "projection",
              "projection_branch1": [8], "projection_branch2": [12]}),
    ("dlrm", {"bottom_layers": [8, 4], "top_layers": [8], "self_interaction": True}),
    ("dnn", {"deep_layers": [8], "task": "regression"}),
    ("dcn", {"structure": "parallel", "deep_layers": [8], "rank": 2, "norm": "batch",
             "first_order": True, "first_order_l2": 0.1}),
    ("dnn", {"deep_layers": [8], "norm": "layer"}),
    ("dcn", {"deep_layers": [8], "rank": 2, "fm_dim": 3, "fm_l2": 0.05, "task": "regression"}),
]


def _batch(b, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(b, 3, generator=g)
    sparse = torch.stack([torch.randint(0, v, (b,), generator=g) for v in SCHEMA.vocab_sizes], 1)
    return dense, sparse


def test_registry_lists_all_models():
    assert list_models() == ["dcn", "dcn-mix", "dlrm", "dnn"]


@pytest.mark.parametrize("name, config", VARIANTS)
def test_model_contract(name, config):
    torch.manual_seed(0)
    model = build_model(name, SCHEMA, config)
    dense, sparse = _batch(6)
    # Batch size 1 gives the same logit as the same row inside a batch.
    model.eval()
    one = model(dense[:1], sparse[:1])
    assert one.shape == (1,)
    torch.testing.assert_close(one, model(dense, sparse)[:1])
    # Finite output and a gradient on every parameter.
    model.train()
    logits = model(dense, sparse)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    loss = loss_fn(model.task, logits, torch.randint(0, 2, (6,)).float()) + model.regularization()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad.to_dense()).all()
        assert p.grad.to_dense().abs().sum() > 0, f"{name}: zero gradient for {pname}"
    # state_dict and config round trip through JSON.
    spec = json.loads(json.dumps(model_spec(model)))
    clone = model_from_spec(spec)
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    torch.testing.assert_close(clone(dense, sparse), model(dense, sparse))
    assert clone.num_parameters() == model.num_parameters() > 0


def test_num_parameters_of_the_demo_cross_model():
    model = DCN(FeatureSchema(dense=("x1", "x2", "x3")),
                DCNConfig(structure="cross_only", num_cross_layers=1, task="regression"))
    assert model.num_parameters() == 9 + 3 + 3 + 1


def test_dense_only_and_sparse_only_schemas():
    dense_only = build_model("dcn", FeatureSchema(dense=("a", "b")), {"deep_layers": [4]})
    assert dense_only(torch.rand(2, 2), None).shape == (2,)
    sparse_only = build_model("dcn", FeatureSchema(sparse=("u",), vocab_sizes=(4,),
                                                   embedding_dim=3), {"deep_layers": [4]})
    assert sparse_only(torch.zeros(2, 0), torch.tensor([[1], [3]])).shape == (2,)
    assert sparse_only(None, torch.tensor([[1], [3]])).shape == (2,)


def test_heads():
    logits = torch.tensor([0.0, 2.0])
    labels = torch.tensor([1.0, 0.0])
    expected = -(torch.log(torch.sigmoid(logits[0])) + torch.log(1 - torch.sigmoid(logits[1]))) / 2
    torch.testing.assert_close(loss_fn("binary", logits, labels), expected)
    torch.testing.assert_close(loss_fn("regression", logits, labels), torch.tensor(2.5))
    torch.testing.assert_close(predict("binary", logits), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="task"):
        loss_fn("multiclass", logits, labels)


@pytest.mark.parametrize("name, config, match", [
    ("dcn", {"rnak": 2}, "unknown DCNConfig option"),
    ("dcn", {"structure": "serial"}, "structure"),
    ("dcn", {"rank": 0}, "rank"),
    ("dlrm", {"bottom_layers": [8, 5]}, "bottom_layers must end in embedding_dim=4"),
    ("dlrm", {"interaction": "cat"}, "interaction"),
    ("dnn", {"task": "multiclass"}, "task"),
    ("xgboost", {}, "unknown model"),
])
def test_bad_configs(name, config, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, SCHEMA, config)


def test_bad_inputs_name_what_is_wrong():
    model = build_model("dcn", SCHEMA, SMALL["dcn"])
    dense, sparse = _batch(2)
    with pytest.raises(ValueError, match=r"dense must have shape \(B, 3\)"):
        model(dense[:, :2], sparse)
    with pytest.raises(TypeError, match="dense must be a floating-point"):
        model(dense.long(), sparse)
    with pytest.raises(TypeError, match="int64"):
        model(dense, sparse.float())
    with pytest.raises(ValueError, match="out of range"):
        model(dense, sparse + 100)
    with pytest.raises(ValueError, match="batch size"):
        model(dense[:1], sparse)
    with pytest.raises(ValueError, match="vocab_sizes"):
        FeatureSchema(sparse=("a",), vocab_sizes=())
    with pytest.raises(ValueError, match="unique"):
        FeatureSchema(dense=("a",), sparse=("a",), vocab_sizes=(2,))
