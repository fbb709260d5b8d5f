"""Each cross variant part against the float64 reference ops and against the others.

The parts compute with weights they are handed, so every test draws fresh random float64
weights and inputs, for a batch of one and a larger one.
"""

import pytest
import torch

from crossrank.layers.cross_variants import (
    FullRankCross,
    LowRankCross,
    MixtureCross,
    VectorCross,
)
from crossrank.ops import reference
from tolerances import assert_close

N, L = 7, 3
BATCHES = [1, 6]


def _draw(part, seed, scale=0.5):
    """Fresh float64 weights of the part's shapes, normal with std ``scale``."""
    g = torch.Generator().manual_seed(seed)
    shapes = {name: w.shape for name, w in part.make_weights("zeros").items()}
    return {name: torch.randn(shape, generator=g, dtype=torch.float64) * scale
            for name, shape in shapes.items()}


def _inputs(b, seed, n=N):
    g = torch.Generator().manual_seed(seed)
    x0, xl, bias = (torch.randn(*shape, generator=g, dtype=torch.float64)
                    for shape in ((b, n), (b, n), (n,)))
    return x0, xl, bias


PARTS = {
    "full rank": lambda: FullRankCross(N, L, diag_scale=0.3, activation="relu"),
    "low rank": lambda: LowRankCross(N, L, rank=3, diag_scale=0.3, activation="tanh"),
    "mixture": lambda: MixtureCross(N, L, rank=2, num_experts=3, diag_scale=0.3,
                                    activation="tanh"),
    "vector": lambda: VectorCross(N, L),
}


def _reference_layer(name, w, layer, x0, xl, bias):
    """The reference op of each variant, called with the layer's slices by hand."""
    act = {"full rank": torch.relu, "low rank": torch.tanh, "mixture": torch.tanh}.get(name)
    if name == "full rank":
        return reference.cross_layer(x0, xl, w["weight"][layer], bias, diag_scale=0.3,
                                     activation=act)
    if name == "low rank":
        return reference.low_rank_cross_layer(x0, xl, w["u"][layer], w["v"][layer], bias,
                                              diag_scale=0.3, activation=act)
    if name == "mixture":
        return reference.mixture_cross_layer(x0, xl, *(w[k][layer] for k in ("u", "v", "c", "gate")),
                                             bias, diag_scale=0.3, activation=act)
    return reference.vector_cross_layer(x0, xl, w["weight"][layer], bias)


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("name", list(PARTS))
def test_part_layer_is_the_reference_op_of_its_layer(name, b):
    part = PARTS[name]()
    w = _draw(part, seed=b)
    for layer in range(L):
        x0, xl, bias = _inputs(b, seed=10 * b + layer)
        for bias_or_none in (bias, None):
            got = part.layer_forward(w, layer, x0, xl, bias_or_none)
            assert got.shape == (b, N) and got.dtype == torch.float64
            assert_close(got, _reference_layer(name, w, layer, x0, xl, bias_or_none))


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("name", ["full rank", "low rank", "vector"])
def test_effective_weight_reproduces_the_linear_layer(name, b):
    """Without an activation a layer is x0 * (W_eff x_l + b) + x_l (DCN v1: bias outside)."""
    part = {"full rank": FullRankCross(N, L, diag_scale=0.3),
            "low rank": LowRankCross(N, L, rank=3, diag_scale=0.3),
            "vector": VectorCross(N, L)}[name]
    w = _draw(part, seed=20 + b)
    x0, xl, bias = _inputs(b, seed=30 + b)
    for layer in range(L):
        w_eff = part.effective_weight(w, layer)  # (N, N)
        if name == "vector":
            expected = x0 * (xl @ w_eff.T) + bias + xl
        else:
            expected = x0 * (xl @ w_eff.T + bias) + xl
        assert_close(part.layer_forward(w, layer, x0, xl, bias), expected)


@pytest.mark.parametrize("b", BATCHES)
def test_mixture_effective_weights_reproduce_the_linear_experts(b):
    """With g = None, x_{l+1} = sum_k p_k x0 * (W_k x_l + b) + x_l, W_k = U_k C_k V_k + dI."""
    part = MixtureCross(N, L, rank=2, num_experts=3, diag_scale=0.3)
    w = _draw(part, seed=40 + b)
    x0, xl, bias = _inputs(b, seed=50 + b)
    for layer in range(L):
        w_eff = part.effective_weight(w, layer)  # (K, N, N)
        p = torch.softmax(xl @ w["gate"][layer].T, dim=1)  # (B, K)
        experts = torch.einsum("kij,bj->bki", w_eff, xl) + bias  # (B, K, N)
        expected = (p.unsqueeze(-1) * (x0.unsqueeze(1) * experts)).sum(dim=1) + xl
        assert_close(part.layer_forward(w, layer, x0, xl, bias), expected)


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_low_rank_with_uv_as_w_equals_full_rank(activation, b):
    low = LowRankCross(N, L, rank=3, diag_scale=0.2, activation=activation)
    full = FullRankCross(N, L, diag_scale=0.2, activation=activation)
    uv = _draw(low, seed=60 + b)
    w = {"weight": uv["u"] @ uv["v"]}  # (L, N, r) @ (L, r, N) -> (L, N, N)
    x0, _, bias = _inputs(b, seed=70 + b)
    x_low = x_full = x0
    for layer in range(L):
        x_low = low.layer_forward(uv, layer, x0, x_low, bias)
        x_full = full.layer_forward(w, layer, x0, x_full, bias)
        assert_close(x_low, x_full)
        assert_close(low.effective_weight(uv, layer), full.effective_weight(w, layer))


@pytest.mark.parametrize("b", BATCHES)
def test_one_expert_mixture_equals_its_low_rank_expert(b):
    """K = 1: the gate is 1 for every row; with g = None and C = I the expert is U V."""
    mix = MixtureCross(N, L, rank=3, num_experts=1, diag_scale=0.4)
    low = LowRankCross(N, L, rank=3, diag_scale=0.4)
    w_mix = _draw(mix, seed=80 + b)
    w_mix["c"] = torch.eye(3, dtype=torch.float64).expand(L, 1, 3, 3).clone()
    w_low = {"u": w_mix["u"][:, 0], "v": w_mix["v"][:, 0]}  # (L, N, r), (L, r, N)
    x0, _, bias = _inputs(b, seed=90 + b)
    biases = bias.expand(L, N)
    x_mix = x_low = x0
    for layer in range(L):
        x_mix = mix.layer_forward(w_mix, layer, x0, x_mix, bias)
        x_low = low.layer_forward(w_low, layer, x0, x_low, bias)
        assert_close(x_mix, x_low)
        assert_close(mix.effective_weight(w_mix, layer)[0], low.effective_weight(w_low, layer))
    assert torch.equal(mix.gate_shares(w_mix, x0, biases), torch.ones(L, 1, dtype=torch.float64))


@pytest.mark.parametrize("b", BATCHES)
def test_mixture_gate_shares_average_each_layers_softmax(b):
    part = PARTS["mixture"]()
    w = _draw(part, seed=100 + b)
    x0, _, _ = _inputs(b, seed=110 + b)
    biases = torch.randn(L, N, generator=torch.Generator().manual_seed(b), dtype=torch.float64)
    shares = part.gate_shares(w, x0, biases)
    assert shares.shape == (L, 3)
    x = x0
    for layer in range(L):
        gates = torch.softmax(x @ w["gate"][layer].T, dim=1)  # (B, K)
        assert_close(shares[layer], gates.mean(dim=0))
        x = reference.mixture_cross_layer(x0, x, *(w[k][layer] for k in ("u", "v", "c", "gate")),
                                          biases[layer], diag_scale=0.3, activation=torch.tanh)
    assert_close(shares.sum(dim=1), torch.ones(L, dtype=torch.float64))


@pytest.mark.parametrize(("name", "names", "shapes"), [
    ("full rank", ("weight",), [(L, N, N)]),
    ("low rank", ("u", "v"), [(L, N, 3), (L, 3, N)]),
    ("mixture", ("u", "v", "c", "gate"), [(L, 3, N, 2), (L, 3, 2, N), (L, 3, 2, 2), (L, 3, N)]),
    ("vector", ("weight",), [(L, N)]),
])
def test_parts_declare_their_weights_and_kernels(name, names, shapes):
    part = PARTS[name]()
    weights = part.make_weights("glorot_uniform")
    assert part.weight_names == names
    assert list(weights) == list(names)
    assert [tuple(w.shape) for w in weights.values()] == shapes
    assert all(isinstance(w, torch.nn.Parameter) for w in weights.values())
    assert [k is weights[n] for k, n in zip(part.kernels(weights), names)] == [True] * len(names)
    assert part.fused == (name in ("full rank", "low rank"))
    if not part.fused:
        with pytest.raises(TypeError, match=name):
            part.stack_weights(weights)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: FullRankCross(0, 1), "in_features"),
    (lambda: FullRankCross(3, 0), "num_layers"),
    (lambda: FullRankCross(3, 1, diag_scale=-0.5), "diag_scale"),
    (lambda: LowRankCross(3, 1, rank=0), "rank"),
    (lambda: MixtureCross(3, 1, rank=2, num_experts=0), "num_experts"),
    (lambda: LowRankCross(3, 1, rank=2, activation="rleu"), "activation"),
])
def test_parts_name_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
