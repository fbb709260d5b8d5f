"""Field-pair importance against block norms computed by hand and by explicit loops."""

import json
import re

import pytest
import torch

from crossrank.errors import ConfigError
from crossrank.explain import block_sums, explain_model, field_pair_importance, rank_pairs
from crossrank.layers import CrossNet
from crossrank.models import (
    DCN,
    DLRM,
    DNN,
    CrossConfig,
    DCNConfig,
    DLRMConfig,
    DNNConfig,
    FeatureSchema,
)
from tolerances import assert_close


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _loop_norms(w, blocks):
    """||W[rows of f, cols of g]||_F by slicing, one block at a time."""
    f = len(blocks)
    out = torch.zeros(f, f, dtype=torch.float64)
    for a, (_, s1, e1) in enumerate(blocks):
        for b, (_, s2, e2) in enumerate(blocks):
            out[a, b] = torch.linalg.norm(w[s1:e1, s2:e2].to(torch.float64))
    return out


def test_hand_computed_blocks_and_combination_over_layers():
    net = CrossNet(3, 2, use_bias=False).double()
    with torch.no_grad():
        net.weight[0] = torch.tensor([[0.0, 3.0, 4.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
        net.weight[1] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 12.0, 0.0]])
    imp = field_pair_importance(net, field_blocks=[("a", 0, 1), ("bc", 1, 3)])
    assert imp.fields == ("a", "bc") and imp.widths == (1, 2)
    assert imp.layers[0].tolist() == [[0.0, 5.0], [2.0, 0.0]]
    assert imp.layers[1].tolist() == [[1.0, 0.0], [0.0, 12.0]]
    # combined = sqrt(sum over layers of squares)
    assert imp.combined.tolist() == [[1.0, 5.0], [2.0, 12.0]]
    # unordered pair (a, bc) = sqrt(5^2 + 2^2); self pair (bc, bc) = 12, flagged
    pairs = imp.pairs()
    assert [(p.field_i, p.field_j, p.is_self) for p in pairs] == [
        ("bc", "bc", True), ("a", "bc", False), ("a", "a", True)]
    assert pairs[1].score == pytest.approx(29 ** 0.5)
    assert sum(p.share for p in pairs) == pytest.approx(1.0)
    assert pairs[0].share == pytest.approx(144 / (1 + 25 + 4 + 144))
    # rms: each block norm over sqrt(its number of entries): 1 x 2 blocks over sqrt(2), ...
    rms = field_pair_importance(net, field_blocks=[("a", 0, 1), ("bc", 1, 3)], measure="rms")
    assert_close(rms.layers[0], torch.tensor([[0.0, 5 / 2 ** 0.5], [2 / 2 ** 0.5, 0.0]],
                                             dtype=torch.float64))
    assert_close(rms.layers[1], torch.tensor([[1.0, 0.0], [0.0, 12 / 2.0]], dtype=torch.float64))
    assert rms.label.startswith("RMS") and imp.label == "||W[i,j]||_F"
    with pytest.raises(ValueError, match="measure"):
        field_pair_importance(net, measure="max")


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("diag", [0.0, 0.5])
def test_mixed_dense_and_embedding_widths_match_loops(rank, diag):
    schema = FeatureSchema(dense=("d1", "d2"), categorical=("u", "v", "w"), vocab_sizes=(5, 6, 7),
                           embedding_dim=3)
    cross = CrossConfig(num_layers=2, rank=rank, diag_scale=diag)
    model = _randomize(DCN(schema, DCNConfig(cross=cross, deep_layers=(4,))))
    blocks = schema.field_blocks()
    assert [e - s for _, s, e in blocks] == [1, 1, 3, 3, 3]
    imp = field_pair_importance(model)
    assert imp.fields == ("d1", "d2", "u", "v", "w")
    for layer in range(2):
        if rank is None:
            w = model.cross.weight[layer].detach()
        else:
            w = (model.cross.u[layer] @ model.cross.v[layer]).detach()
        w = w + diag * torch.eye(w.shape[0])
        assert_close(imp.layers[layer].float(), _loop_norms(w, blocks).float())


def test_blocks_in_any_order_and_block_sums():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(7, 7, generator=g, dtype=torch.float64)
    blocks = [("late", 4, 7), ("first", 0, 1), ("mid", 1, 4)]
    net = CrossNet(7, 1).double()
    with torch.no_grad():
        net.weight[0] = w
    imp = field_pair_importance(net, field_blocks=blocks)
    assert_close(imp.layers[0], _loop_norms(w, blocks))
    sums = block_sums(w.pow(2), torch.tensor([1, 2, 2, 2, 0, 0, 0]), 3)
    assert_close(sums.sqrt(), _loop_norms(w, blocks))


def test_vector_kind_rows_are_the_weight_norms():
    """DCN v1: W = 1 w^T, so block (f, g) = sqrt(width_f) * ||w_g||, the same for every f."""
    schema = FeatureSchema(dense=("a",), categorical=("u", "v"), vocab_sizes=(3, 3), embedding_dim=4)
    model = _randomize(DCN(schema, DCNConfig(cross=CrossConfig(kind="vector", num_layers=2),
                                             structure="cross_only")).double())
    imp = field_pair_importance(model)
    widths = torch.tensor(imp.widths, dtype=torch.float64)
    for layer in range(2):
        w = model.cross.weight[layer].detach()
        col = torch.stack([torch.linalg.norm(w[s:e]) for _, s, e in schema.field_blocks()])
        assert_close(imp.layers[layer], widths.sqrt()[:, None] * col[None, :])


def _mixture(seed=0):
    net = _randomize(CrossNet(6, 2, rank=2, num_experts=2, diag_scale=0.3).double(), seed)
    return net


def _expert_norms(net, layer, k, blocks):
    w = net.u[layer, k] @ net.c[layer, k] @ net.v[layer, k] + 0.3 * torch.eye(6, dtype=torch.float64)
    return _loop_norms(w.detach(), blocks)


def test_mixture_follows_the_dominant_expert():
    net = _mixture()
    with torch.no_grad():
        net.gate.zero_()
        net.gate[:, 1] = 50.0  # expert 1 takes every row with a positive sum of x_l
        net.u.abs_(), net.v.abs_(), net.c.abs_(), net.bias_param.abs_()  # x_l stays positive
    x0 = torch.rand(64, 6, dtype=torch.float64) + 0.5
    shares = net.gate_shares(x0)
    assert float(shares[:, 1].min()) > 1 - 1e-12
    blocks = [("p", 0, 2), ("q", 2, 3), ("r", 3, 6)]
    imp = field_pair_importance(net, field_blocks=blocks, x0=x0)
    for layer in range(2):
        assert_close(imp.layers[layer], _expert_norms(net, layer, 1, blocks))
        assert not torch.allclose(imp.layers[layer], _expert_norms(net, layer, 0, blocks))
    assert imp.gate_shares is not None and "gate shares on 64 rows" in imp.source


def test_mixture_with_equal_shares_is_the_root_mean_square():
    net = _mixture(1)
    with torch.no_grad():
        net.gate.zero_()  # softmax of zeros: exactly 1/2 each
    blocks = [("p", 0, 3), ("q", 3, 6)]
    imp = field_pair_importance(net, field_blocks=blocks, x0=torch.randn(8, 6, dtype=torch.float64))
    for layer in range(2):
        e0, e1 = (_expert_norms(net, layer, k, blocks) for k in range(2))
        assert_close(imp.layers[layer], ((e0 ** 2 + e1 ** 2) / 2).sqrt())


def test_mixture_needs_data():
    with pytest.raises(ValueError, match="x0 is required"):
        field_pair_importance(_mixture())


def test_dlrm_dcn_blocks_are_the_bottom_output_and_embeddings():
    schema = FeatureSchema(dense=("i1", "i2", "i3"), categorical=("c1", "c2"),
                           vocab_sizes=(4, 5), embedding_dim=4)
    model = _randomize(DLRM(schema, DLRMConfig(bottom_layers=(8, 4), top_layers=(8,),
                                               interaction="dcn",
                                               cross=CrossConfig(num_layers=2, rank=3))))
    imp = field_pair_importance(model)
    assert imp.fields == ("dense", "c1", "c2") and imp.widths == (4, 4, 4)
    net = model.cross_network()
    for layer in range(2):
        w = (net.u[layer] @ net.v[layer]).detach()
        assert_close(imp.layers[layer].float(),
                     _loop_norms(w, model.cross_field_blocks()).float())
    assert imp.model.startswith("DLRM (DCN interaction), 2 cross layers, rank 3")


@pytest.mark.parametrize("model", [
    DNN(FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,), embedding_dim=2),
        DNNConfig(deep_layers=(4,))),
    DLRM(FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,), embedding_dim=2),
         DLRMConfig(bottom_layers=(2,), top_layers=(4,), interaction="dot")),
])
def test_models_without_a_cross_network_are_refused(model, tmp_path):
    one_line = re.escape(f"model '{model.model_name}' has no cross network to explain "
                         f"({model.describe()})")
    for explain in (field_pair_importance, lambda m: explain_model(m, out_dir=tmp_path)):
        with pytest.raises(ConfigError, match=one_line):
            explain(model)
    with pytest.raises(ConfigError, match=one_line):  # explain --data reads x0 first
        model.cross_input(torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ConfigError, match=one_line):
        model.cross_field_blocks()
    assert model.cross_network() is None and not list(tmp_path.iterdir())


def test_dlrm_with_a_mixture_interaction_is_explained_with_gate_shares():
    schema = FeatureSchema(dense=("i1",), categorical=("c1", "c2"), vocab_sizes=(4, 5),
                           embedding_dim=2)
    model = DLRM(schema, DLRMConfig(bottom_layers=(2,), top_layers=(4,), interaction="dcn",
                                    cross=CrossConfig(num_layers=1, rank=2, num_experts=3)))
    x0 = model.cross_input(torch.rand(5, 1), torch.tensor([[0, 1], [3, 4], [2, 2], [1, 0],
                                                           [0, 4]]))
    imp = field_pair_importance(model, x0=x0)
    assert imp.gate_shares.shape == (1, 3) and imp.model.startswith("DLRM (DCN interaction)")


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        field_pair_importance("dcn")
    net = CrossNet(4, 1)
    with pytest.raises(ValueError, match="overlaps"):
        field_pair_importance(net, field_blocks=[("a", 0, 3), ("b", 2, 4)])
    with pytest.raises(ValueError, match=r"columns \[3\] are in no field"):
        field_pair_importance(net, field_blocks=[("a", 0, 3)])
    with pytest.raises(ValueError, match="start < stop"):
        field_pair_importance(net, field_blocks=[("a", 0, 5)])
    with pytest.raises(ValueError, match="unique"):
        field_pair_importance(net, field_blocks=[("a", 0, 2), ("a", 2, 4)])
    with pytest.raises(ValueError, match=r"x0 must be a \(B, 4\)"):
        field_pair_importance(net, x0=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="layer must be"):
        field_pair_importance(net).matrix(1)


def test_weights_only_without_a_mixture():
    net = _randomize(CrossNet(4, 1))
    a = field_pair_importance(net)
    b = field_pair_importance(net, x0=torch.randn(5, 4) * 100)
    assert torch.equal(a.layers, b.layers) and a.source == "weights only"


def test_rank_pairs_symmetrises_and_can_drop_self_pairs():
    m = torch.tensor([[9.0, 0.0, 1.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    crosses = rank_pairs(m, ("a", "b", "c"), include_self=False)
    assert [(p.field_i, p.field_j) for p in crosses] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert [p.score for p in crosses] == pytest.approx([2.0, 2 ** 0.5, 0.0])
    assert [p.rank for p in crosses] == [1, 2, 3] and not any(p.is_self for p in crosses)
    everything = rank_pairs(m, "abc", top_k=1)
    assert everything[0].field_i == "a" and everything[0].is_self
    with pytest.raises(ValueError, match="top_k"):
        rank_pairs(m, "abc", top_k=0)
    with pytest.raises(ValueError, match="fields"):
        rank_pairs(m, "ab")


def test_report_dict_is_json_and_table_names_the_rule():
    schema = FeatureSchema(categorical=("u", "v", "w"), vocab_sizes=(3, 3, 3), embedding_dim=2)
    imp = field_pair_importance(_randomize(DCN(schema, DCNConfig(cross=CrossConfig(num_layers=3),
                                                                 deep_layers=(4,)))))
    data = json.loads(json.dumps(imp.to_dict(top_k=4)))
    assert data["fields"] == ["u", "v", "w"] and len(data["layers"]) == 3
    assert len(data["top_pairs"]) == 4 and len(data["top_pairs_per_layer"]) == 3
    assert data["top_pairs"][0]["score"] == pytest.approx(imp.pairs()[0].score)
    table = imp.format_table(top_k=3)
    assert "root of the sum of squares" in table and len(table.splitlines()) == 2 + 1 + 3
