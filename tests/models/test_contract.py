"""The same contract for every registered model (and each interaction/structure variant)."""

import json

import pytest
import torch

from crossrank.errors import ConfigError
from crossrank.models import (
    DCN,
    CrossConfig,
    DCNConfig,
    DLRMConfig,
    DNNConfig,
    FeatureSchema,
    Regularized,
    build_model,
    list_models,
    loss_fn,
    model_entry,
    model_from_spec,
    model_spec,
    predict,
)
from crossrank.options import describe_fields, from_dict, to_dict

SCHEMA = FeatureSchema(dense=("i1", "i2", "i3"), categorical=("c1", "c2", "c3"),
                       vocab_sizes=(5, 7, 11), embedding_dim=4)
# two multi-valued fields (sum and max pooling; mean in the layer tests) after the categorical
MULTI = FeatureSchema(dense=("i1", "i2", "i3"), categorical=("c1", "c2"), vocab_sizes=(5, 7),
                      embedding_dim=4, multi_valued=("genres", "history"),
                      multi_valued_sizes=(6, 9), multi_valued_widths=(3, 4),
                      pooling=("sum", "max"))
SMALL = {
    "dcn": {"deep_layers": [8]},
    "dcn-mix": {"deep_layers": [8], "cross": {"rank": 3, "num_experts": 2}},
    "dlrm": {"bottom_layers": [8, 4], "top_layers": [8]},
    "dnn": {"deep_layers": [8, 4]},
    "linear": {},
}
DLRM = SMALL["dlrm"]
TERMS = {"first_order": True, "first_order_l2": 0.1, "fm_dim": 3, "fm_l2": 0.05}
# (model, options, task): every registered model, then each variant of its parts
VARIANTS = [(name, SMALL[name], "binary") for name in list_models()] + [
    # DCN: each cross network (full, low rank, mixture, vector) and structure
    ("dcn", {"structure": "parallel", "deep_layers": [8], "cross": {"rank": 2}}, "binary"),
    ("dcn", {"structure": "cross_only", "cross": {"kind": "vector"}}, "binary"),
    ("dcn", {"structure": "stacked", "deep_layers": [8],
             "cross": {"diag_scale": 0.1, "activation": "relu", "rank": 3}}, "binary"),
    ("dcn", {"structure": "cross_only", "cross": {"rank": 2, "num_experts": 3, "l2": 0.01}},
     "regression"),
    ("dcn", {"deep_layers": [8], "cross": {"num_layers": 1, "use_bias": False, "l2": 0.1}},
     "binary"),
    ("dcn", {"structure": "parallel", "deep_layers": [8], "cross": {"rank": 2}, "norm": "batch",
             "terms": {"first_order": True, "first_order_l2": 0.1}}, "binary"),
    ("dcn", {"deep_layers": [8], "cross": {"rank": 2}, "terms": {"fm_dim": 3, "fm_l2": 0.05}},
     "regression"),
    # DLRM: each interaction, a DCN-Mix and a vector cross interaction, and the logit terms
    ("dlrm", {**DLRM, "interaction": "dcn", "cross": {"rank": 2}}, "binary"),
    ("dlrm", {**DLRM, "interaction": "dcn", "cross": {"rank": 2, "num_experts": 3,
                                                       "l2": 0.01}}, "binary"),
    ("dlrm", {**DLRM, "interaction": "dcn", "cross": {"kind": "vector", "rank": None}},
     "regression"),
    ("dlrm", {**DLRM, "interaction": "projection", "projection_branch1": [8],
              "projection_branch2": [12]}, "binary"),
    ("dlrm", {**DLRM, "self_interaction": True}, "binary"),
    ("dlrm", {**DLRM, "terms": TERMS}, "binary"),
    ("dlrm", {**DLRM, "interaction": "dcn", "terms": {"first_order": True}}, "regression"),
    # DNN: norms and the logit terms
    ("dnn", {"deep_layers": [8]}, "regression"),
    ("dnn", {"deep_layers": [8], "norm": "layer"}, "binary"),
    ("dnn", {"deep_layers": [8], "terms": TERMS}, "binary"),
    ("dnn", {"deep_layers": [], "terms": {"first_order": True}}, "regression"),
]


def _batch(b, seed=0, schema=SCHEMA):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(b, 3, generator=g)
    sparse = torch.stack([torch.randint(0, v, (b,), generator=g) for v in schema.vocab_sizes], 1)
    for size, width in zip(schema.multi_valued_sizes, schema.multi_valued_widths):
        ids = torch.randint(0, size, (b, width), generator=g)
        length = torch.randint(0, width + 1, (b, 1), generator=g)
        length[0] = 0  # an empty row (after encoding, a missing value is the id 0 instead)
        ids[torch.arange(width).expand(b, width) >= length] = -1  # padding
        sparse = torch.cat([sparse, ids], dim=1)
    return dense, sparse


def test_registry_lists_all_models():
    assert list_models() == ["dcn", "dcn-mix", "dlrm", "dnn", "linear"]


@pytest.mark.parametrize("schema", [SCHEMA, MULTI], ids=["categorical", "multi-valued"])
@pytest.mark.parametrize("name, config, task", VARIANTS)
def test_model_contract(name, config, task, schema):
    torch.manual_seed(0)
    model = build_model(name, schema, config, task=task)
    assert model.task == task and model.model_name == name
    dense, sparse = _batch(6, schema=schema)
    # Batch size 1 gives the same logit as the same row inside a batch.
    model.eval()
    one = model(dense[:1], sparse[:1])
    assert one.shape == (1,)
    torch.testing.assert_close(one, model(dense, sparse)[:1])
    # Finite output and a gradient on every parameter.
    model.train()
    logits = model(dense, sparse)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    # labels not half ones: a model whose logits all start at 0 (linear) gets a bias gradient
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    loss = loss_fn(model.task, logits, labels) + model.regularization()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad.to_dense()).all()
        assert p.grad.to_dense().abs().sum() > 0, f"{name}: zero gradient for {pname}"
    # Every parameter belongs to exactly one named part.
    owners = [id(p) for part in model.named_parts().values() for p in part.parameters()]
    assert sorted(owners) == sorted(map(id, model.parameters()))
    # state_dict and config round trip through JSON.
    spec = json.loads(json.dumps(model_spec(model)))
    assert spec["task"] == task and "task" not in spec["config"]
    clone = model_from_spec(spec)
    assert clone.config == model.config and clone.task == task
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    torch.testing.assert_close(clone(dense, sparse), model(dense, sparse))
    assert clone.num_parameters() == model.num_parameters() > 0


def test_num_parameters_of_the_demo_cross_model():
    model = DCN(FeatureSchema(dense=("x1", "x2", "x3")),
                DCNConfig(structure="cross_only", cross=CrossConfig(num_layers=1)),
                task="regression")
    assert model.num_parameters() == 9 + 3 + 3 + 1


def test_dense_only_and_sparse_only_schemas():
    dense_only = build_model("dcn", FeatureSchema(dense=("a", "b")), {"deep_layers": [4]})
    assert dense_only(torch.rand(2, 2), None).shape == (2,)
    sparse_only = build_model("dcn", FeatureSchema(categorical=("u",), vocab_sizes=(4,),
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
    ("dcn", {"rnak": 2}, "unknown option 'rnak'"),
    ("dcn", {"rank": 2}, "unknown option 'rank'; did you mean 'cross.rank'"),
    ("dcn", {"structure": "serial"}, "structure"),
    ("dcn", {"cross": {"rank": 0}}, "cross.rank must be an integer >= 1"),
    ("dcn", {"cross.num_experts": 2, "cross.rank": None}, "needs a low cross.rank"),
    ("dcn", {"cross": {"kind": "vector", "rank": 2}}, "takes no rank"),
    ("dcn", {"cross": {"activation": "swish"}}, "cross.activation"),
    ("dcn", {"terms": {"fm_dim": -1}}, "fm_dim"),
    ("dnn", {"terms.fm_dim": True}, "fm_dim"),
    ("dlrm", {"bottom_layers": [8, 5]}, "bottom_layers must end in embedding_dim=4"),
    ("dlrm", {"interaction": "cat"}, "interaction"),
    ("dnn", {"task": "regression"}, "task is not a model option"),
    ("xgboost", {}, "unknown model"),
])
def test_bad_configs(name, config, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, SCHEMA, config)


def test_bad_task_and_a_factorization_machine_without_two_fields():
    with pytest.raises(ConfigError, match="task must be one of"):
        build_model("dnn", SCHEMA, task="multiclass")
    one_field = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,))
    with pytest.raises(ConfigError, match="at least 2 categorical fields"):
        build_model("dnn", one_field, {"terms.fm_dim": 2})


def test_options_merge_over_the_registry_defaults():
    mix = build_model("dcn-mix", SCHEMA, {"cross": {"num_layers": 1}}).config.cross
    assert (mix.num_layers, mix.rank, mix.num_experts) == (1, 32, 4)
    dotted = build_model("dcn-mix", SCHEMA, {"cross.rank": 2}).config.cross
    assert (dotted.rank, dotted.num_experts) == (2, 4)
    assert build_model("dlrm", SCHEMA, {"bottom_layers": [4]}).config.cross == \
        CrossConfig(num_layers=3, rank=64)  # DLRM's DCN interaction as before
    assert model_entry("dcn-mix") == (DCNConfig, {"cross": {"rank": 32, "num_experts": 4}})


@pytest.mark.parametrize("config_cls", [DCNConfig, DLRMConfig, DNNConfig])
def test_every_option_has_help_and_round_trips(config_cls):
    rows = describe_fields(config_cls)
    assert rows and all(help_text for _, _, help_text, _, _ in rows)
    names = [name for name, *_ in rows]
    assert "terms.fm_dim" in names and ("cross.rank" in names) == (config_cls is not DNNConfig)
    default = config_cls()
    assert from_dict(config_cls, json.loads(json.dumps(to_dict(default)))) == default


@pytest.mark.parametrize("name, config, parts", [
    ("dcn", {"deep_layers": [8], "terms": {"first_order": True}},  # fm: the default's
     ["embedding", "cross", "deep", "output", "first_order", "fm"]),
    ("dcn", {"structure": "cross_only", "terms": {"fm_dim": 0}}, ["embedding", "cross", "output"]),
    ("dlrm", {**DLRM, "interaction": "dcn", "terms": {"fm_dim": 2}},
     ["bottom", "embedding", "interaction", "top", "fm"]),
    ("dnn", {"deep_layers": [8], "terms": TERMS}, ["embedding", "deep", "output", "first_order",
                                                   "fm"]),
])
def test_named_parts(name, config, parts):
    assert list(build_model(name, SCHEMA, config).named_parts()) == parts


def test_regularization_sums_the_declared_penalties_of_the_parts():
    model = build_model("dlrm", SCHEMA, {**DLRM, "interaction": "dcn",
                                         "cross": {"rank": 2, "l2": 0.1},
                                         "terms": {"first_order": True, "first_order_l2": 0.2}})
    with torch.no_grad():
        model.first_order.dense_weight.fill_(1.0)
    net = model.cross_network()
    expected = 0.1 * (net.u.square().sum() + net.v.square().sum()) + 0.2 * 3
    torch.testing.assert_close(model.regularization(), expected)
    assert isinstance(model.interaction, Regularized) and not isinstance(model.top, Regularized)


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
        FeatureSchema(categorical=("a",), vocab_sizes=())
    with pytest.raises(ValueError, match="unique"):
        FeatureSchema(dense=("a",), categorical=("a",), vocab_sizes=(2,))


def test_feature_schema_reads_its_old_names():
    with pytest.warns(DeprecationWarning, match="categorical"):
        old = FeatureSchema(dense=("a",), sparse=("u",), vocab_sizes=(3,))
    assert old == FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,))
    assert old.sparse == ("u",) and old.num_sparse == old.num_categorical == 1
    assert FeatureSchema.from_dict({"dense": ["a"], "sparse": ["u"], "vocab_sizes": [3]}) == old
    assert FeatureSchema.from_dict(old.to_dict()) == old and "sparse" not in old.to_dict()
    with pytest.raises(ValueError, match="categorical= only"):
        FeatureSchema(categorical=("u",), sparse=("v",), vocab_sizes=(3,))
