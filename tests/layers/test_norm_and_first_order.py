"""MLP normalization (RowSafeBatchNorm at batch size 1), FirstOrder and per-part LR scales."""

import numpy as np
import pytest
import torch
from torch import nn

from crossrank.errors import ConfigError
from crossrank.layers import MLP, FirstOrder
from crossrank.layers.mlp import RowSafeBatchNorm
from crossrank.models import FeatureSchema, build_model
from crossrank.train.optim import build_optimizer
from tolerances import assert_close


def test_row_safe_batch_norm_equals_batch_norm_for_two_or_more_rows():
    torch.manual_seed(0)
    x = torch.randn(5, 4, dtype=torch.float64)
    ours, ref = RowSafeBatchNorm(4).double(), nn.BatchNorm1d(4).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2)
        ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    assert_close(ours(x), ref(x))
    assert_close(ours.running_mean, ref.running_mean)
    assert_close(ours.running_var, ref.running_var)


def test_row_safe_batch_norm_trains_on_one_row_with_the_running_statistics():
    torch.manual_seed(1)
    bn = RowSafeBatchNorm(3).double()
    bn(torch.randn(8, 3, dtype=torch.float64) * 3 + 1)  # move the running statistics
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    row = torch.randn(1, 3, dtype=torch.float64)
    out = bn(row)
    expected = (row - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    assert_close(out, expected)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    out.sum().backward()
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        nn.BatchNorm1d(3).double()(row)  # what torch's own layer does with the same row


@pytest.mark.parametrize("norm, cls", [("layer", nn.LayerNorm), ("batch", RowSafeBatchNorm)])
def test_mlp_puts_the_norm_between_linear_and_activation(norm, cls):
    mlp = MLP(6, [5, 4], norm=norm, dropout=0.1)
    kinds = [type(m) for m in mlp.layers]
    assert kinds == [nn.Linear, cls, nn.ReLU, nn.Dropout, nn.Linear, cls, nn.ReLU, nn.Dropout]
    assert MLP(6, [5, 4], norm=norm, activate_last=False).layers[-1].__class__ is nn.Linear
    mlp.train()
    assert mlp(torch.randn(1, 6)).shape == (1, 4)  # batch size 1 trains


def test_mlp_rejects_an_unknown_norm():
    with pytest.raises(ValueError, match="norm must be one of"):
        MLP(4, [3], norm="group")


def test_first_order_against_a_float64_reference():
    torch.manual_seed(2)
    layer = FirstOrder(3, [4, 6], l2=0.1).double()
    dense = torch.randn(7, 3, dtype=torch.float64)
    sparse = torch.stack([torch.randint(0, 4, (7,)), torch.randint(0, 6, (7,))], 1)
    assert torch.equal(layer(dense, sparse), torch.zeros(7, dtype=torch.float64))  # starts at 0
    with torch.no_grad():
        layer.dense_weight.normal_()
        layer.values.table.weight.normal_()
    w = layer.values.table.weight[:, 0]
    expected = dense @ layer.dense_weight + w[sparse[:, 0]] + w[4 + sparse[:, 1]]
    assert_close(layer(dense, sparse), expected)
    assert_close(layer.regularization(), 0.1 * layer.dense_weight.square().sum())


def test_first_order_without_categorical_fields_and_bad_arguments():
    layer = FirstOrder(2, [])
    assert layer(torch.ones(3, 2), None).shape == (3,)
    with pytest.raises(ValueError, match="num_dense"):
        FirstOrder(-1, [3])


@pytest.mark.parametrize("name", ["dcn", "dnn"])
@pytest.mark.parametrize("sparse", [False, True])
def test_lr_scales_give_the_first_order_weights_their_own_learning_rate(name, sparse):
    schema = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,), embedding_dim=2)
    model = build_model(name, schema, {"deep_layers": [4], "terms": {"first_order": True},
                                       "sparse_gradients": sparse})
    opt = build_optimizer(model, "adam", 1e-3, sparse_lr=2e-3, lr_scales={"first_order": 10.0})
    lr_of = {id(p): g["lr"] for o in opt.optimizers for g in o.param_groups for p in g["params"]}
    fo = model.first_order
    assert lr_of[id(fo.dense_weight)] == pytest.approx(1e-2)
    assert lr_of[id(fo.values.table.weight)] == pytest.approx(2e-2 if sparse else 1e-2)
    assert lr_of[id(model.output.weight)] == pytest.approx(1e-3)
    assert lr_of[id(model.embedding.table.weight)] == pytest.approx(2e-3 if sparse else 1e-3)
    assert len(lr_of) == len(list(model.parameters()))  # every parameter in exactly one group


def test_batch_norm_model_trains_when_the_last_batch_has_one_row(tmp_path):
    from crossrank.data import EncodedDataset
    from crossrank.train.config import TrainConfig
    from crossrank.train.loop import Trainer

    g = torch.Generator().manual_seed(3)
    rows = 2 * 16 + 1  # two full batches, then a batch of one row
    data = EncodedDataset.from_arrays(torch.rand(rows, 2, generator=g).numpy(),
                                      torch.randint(0, 5, (rows, 1), generator=g).numpy(),
                                      torch.randint(0, 2, (rows,), generator=g).numpy())
    schema = FeatureSchema(dense=("a", "b"), categorical=("u",), vocab_sizes=(5,), embedding_dim=2)
    model = build_model("dcn", schema, {"deep_layers": [4], "norm": "batch", "cross.rank": 1})
    config = TrainConfig(epochs=2, batch_size=16, patience=5, progress=False)
    result = Trainer(model, config, out_dir=tmp_path, verbose=False).fit(data, None)
    assert len(result.history) == 2
    assert all(np.isfinite(h["train_loss"]) for h in result.history)


def test_lr_scales_scale_any_part_and_name_the_parts_on_a_typo():
    schema = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,), embedding_dim=2)
    model = build_model("dlrm", schema, {"bottom_layers": [2], "top_layers": [4],
                                         "interaction": "dcn"})
    opt = build_optimizer(model, "sgd", 0.1, lr_scales={"interaction": 0.5, "top": 2.0})
    lr_of = {id(p): g["lr"] for o in opt.optimizers for g in o.param_groups for p in g["params"]}
    for part, lr in (("interaction", 0.05), ("top", 0.2), ("bottom", 0.1), ("embedding", 0.1)):
        for p in model.named_parts()[part].parameters():
            assert lr_of[id(p)] == pytest.approx(lr), part
    with pytest.raises(ConfigError, match="part 'crosss'.*its parts: bottom, embedding, "
                                          "interaction, top"):
        build_optimizer(model, "sgd", 0.1, lr_scales={"crosss": 2.0})
    with pytest.raises(ConfigError, match="lr_scales.top must be a positive number"):
        build_optimizer(model, "sgd", 0.1, lr_scales={"top": 0})
    with pytest.raises(ConfigError, match="not a crossrank model"):
        build_optimizer(nn.Linear(2, 1), "sgd", 0.1, lr_scales={"top": 2.0})


@pytest.mark.parametrize("sparse", [False, True])
def test_weight_decay_reaches_the_dense_parameters_only(sparse):
    schema = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,), embedding_dim=2)
    model = build_model("dcn", schema, {"deep_layers": [4], "sparse_gradients": sparse})
    opt = build_optimizer(model, "adam", 1e-3, weight_decay=3e-4)
    decay = {id(p): g.get("weight_decay", 0.0) for o in opt.optimizers for g in o.param_groups
             for p in g["params"]}
    assert decay[id(model.output.weight)] == 3e-4
    assert decay[id(model.embedding.table.weight)] == (0.0 if sparse else 3e-4)
    with pytest.raises(ValueError, match="weight_decay"):
        build_optimizer(model, "adam", 1e-3, weight_decay=-1.0)


def test_weight_decay_shrinks_a_parameter_with_no_loss_gradient():
    p = nn.Parameter(torch.ones(3))
    model = nn.Module()
    model.p = p
    opt = build_optimizer(model, "sgd", 0.1, weight_decay=0.5)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), 1 - 0.1 * 0.5))
