"""CrossNet and FeatureCross against independent float64 formulas written per sample."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from crossrank.layers import CrossNet, FeatureCross
from crossrank.ops import reference
from tolerances import assert_close

B, N = 5, 7


def _x(seed=0, b=B, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, generator=g, dtype=torch.float64)


def _randomize(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


def per_sample_matrix(x0, weights, biases, diag, act=None):
    """x_{l+1}[i] = x0[i] * (act(sum_j W[i,j] x_l[j] + b[i]) + diag x_l[i]) + x_l[i], by loops."""
    x0 = x0.numpy()
    out = np.empty_like(x0)
    for s in range(x0.shape[0]):
        x = x0[s].copy()
        for w, b in zip(weights, biases):
            w, b = w.numpy(), (np.zeros(len(x)) if b is None else b.numpy())
            new = np.empty_like(x)
            for i in range(len(x)):
                h = sum(w[i, j] * x[j] for j in range(len(x))) + b[i]
                if act == "relu":
                    h = max(h, 0.0)
                new[i] = x0[s, i] * (h + diag * x[i]) + x[i]
            x = new
        out[s] = x
    return torch.from_numpy(out)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("diag", [0.0, 0.3])
@pytest.mark.parametrize("layers", [1, 3])
def test_full_rank_matches_per_sample_formula(use_bias, diag, layers):
    net = _randomize(CrossNet(N, layers, diag_scale=diag, use_bias=use_bias).double())
    x0 = _x()
    ws = [net.weight[i].detach() for i in range(layers)]
    bs = [net.bias_param[i].detach() if use_bias else None for i in range(layers)]
    assert_close(net(x0), per_sample_matrix(x0, ws, bs, diag))


@pytest.mark.parametrize("activation", [None, "relu"])
def test_low_rank_matches_formula_with_pre_activation(activation):
    net = _randomize(CrossNet(N, 2, rank=3, diag_scale=0.2, activation=activation).double())
    x0 = _x(3)
    ws = [(net.u[i] @ net.v[i]).detach() for i in range(2)]
    bs = [net.bias_param[i].detach() for i in range(2)]
    assert_close(net(x0), per_sample_matrix(x0, ws, bs, 0.2, act=activation))


def test_vector_kind_is_dcn_v1():
    net = _randomize(CrossNet(N, 2, kind="vector").double())
    x0 = _x(4)
    expected = x0.numpy().copy()
    x = expected.copy()
    for layer in range(2):
        w = net.weight[layer].detach().numpy()
        b = net.bias_param[layer].detach().numpy()
        x = np.stack([x0[s].numpy() * float(x[s] @ w) + b + x[s] for s in range(B)])
    assert_close(net(x0), torch.from_numpy(x))
    # Its effective weight reproduces the layer: x0 * (W x) with W = 1 w^T.
    w_eff = net.effective_weight(0)
    assert torch.equal(w_eff[0], w_eff[3])


def test_mixture_matches_expert_loop():
    k, r = 3, 2
    net = _randomize(CrossNet(N, 2, rank=r, num_experts=k, activation="tanh").double())
    x0 = _x(5)
    x = x0.clone()
    for layer in range(2):
        gates = torch.softmax(x @ net.gate[layer].detach().T, dim=1)
        mix = torch.zeros_like(x)
        for e in range(k):
            u, v, c = (p[layer, e].detach() for p in (net.u, net.v, net.c))
            h = torch.tanh(torch.tanh(x @ v.T) @ c.T) @ u.T + net.bias_param[layer].detach()
            mix += gates[:, e:e + 1] * (x0 * h)
        x = mix + x
    assert_close(net(x0), x)


def test_mixture_with_one_expert_equals_low_rank():
    mix = _randomize(CrossNet(N, 2, rank=3, num_experts=2).double())
    with torch.no_grad():
        mix.gate.zero_()
        mix.gate[:, 0] = 0.0
        mix.u[:, 1].copy_(mix.u[:, 0])
        mix.v[:, 1].copy_(mix.v[:, 0])
        mix.c.copy_(torch.eye(3, dtype=torch.float64).expand_as(mix.c))
    low = CrossNet(N, 2, rank=3).double()
    with torch.no_grad():
        low.u.copy_(mix.u[:, 0])
        low.v.copy_(mix.v[:, 0])
        low.bias_param.copy_(mix.bias_param)
    x0 = _x(6)
    assert_close(mix(x0), low(x0))


def test_low_rank_with_full_rank_factorisation_equals_full_rank():
    full = _randomize(CrossNet(N, 2, diag_scale=0.1).double())
    low = CrossNet(N, 2, rank=N, diag_scale=0.1).double()
    with torch.no_grad():
        for layer in range(2):
            w = full.weight[layer]
            q, r = torch.linalg.qr(w)
            low.u[layer].copy_(q)
            low.v[layer].copy_(r)
        low.bias_param.copy_(full.bias_param)
    x0 = _x(7)
    assert_close(low(x0), full(x0))
    assert_close(low.effective_weight(1), full.effective_weight(1))


def test_effective_weight_includes_diag_and_bias_accessor():
    net = _randomize(CrossNet(4, 2, rank=2, diag_scale=0.5).double())
    expected = (net.u[1] @ net.v[1]).detach() + 0.5 * torch.eye(4, dtype=torch.float64)
    assert_close(net.effective_weight(1), expected)
    assert torch.equal(net.bias(1), net.bias_param[1].detach())
    assert torch.equal(CrossNet(4, 1, use_bias=False).bias(0), torch.zeros(4))


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2}, {"kind": "vector"},
                                    {"rank": 2, "num_experts": 2, "activation": "tanh"},
                                    {"rank": 2, "diag_scale": 0.3, "activation": "tanh"}])
def test_gradcheck(kwargs):
    """Gradients of the input and of every parameter against finite differences."""
    net = _randomize(CrossNet(4, 2, **kwargs).double())
    names = [name for name, _ in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    x0 = _x(8, b=3, n=4).requires_grad_()

    def fn(x, *ps):
        return torch.func.functional_call(net, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x0, *params))


def test_batch_size_one():
    for kwargs in ({}, {"rank": 2}, {"kind": "vector"}, {"rank": 2, "num_experts": 3}):
        net = CrossNet(6, 2, **kwargs)
        x = torch.randn(1, 6)
        assert net(x).shape == (1, 6)
        batched = net(torch.cat([x, torch.randn(3, 6)]))
        torch.testing.assert_close(net(x)[0], batched[0])


def test_layers_do_not_share_weights():
    net = CrossNet(5, 3, rank=2)
    net(torch.randn(4, 5)).sum().backward()
    assert not torch.equal(net.u.grad[0], net.u.grad[1])
    assert net.u[0].data_ptr() != net.u[1].data_ptr()
    assert not torch.equal(net.effective_weight(0), net.effective_weight(1))
    mix = CrossNet(5, 2, rank=2, num_experts=2)
    assert not torch.equal(mix.gate[0], mix.gate[1])


def test_regularization_is_l2_of_kernels():
    net = _randomize(CrossNet(4, 2, rank=2, kernel_l2=0.1, bias_l2=0.01).double())
    expected = 0.1 * (net.u.pow(2).sum() + net.v.pow(2).sum()) + 0.01 * net.bias_param.pow(2).sum()
    assert_close(net.regularization(), expected)


def test_feature_cross_matches_crossnet_layer_and_keras_call_shape():
    layer = _randomize(FeatureCross(6, projection_dim=2, diag_scale=0.1,
                                    pre_activation="relu").double())
    x0 = _x(9, b=4, n=6)
    x1 = layer(x0)
    assert_close(x1, layer.cross(x0))
    x2 = layer(x0, x1)
    w = layer.effective_weight() - 0.1 * torch.eye(6, dtype=torch.float64)
    b = layer.cross.bias(0)
    expected = x0 * (torch.relu(x1 @ w.T + b) + 0.1 * x1) + x1
    assert_close(x2, expected)
    # Leading dims (B, S, N), as keras-rs allows.
    x3 = torch.randn(2, 3, 6, dtype=torch.float64)
    assert layer(x3).shape == (2, 3, 6)
    assert_close(layer(x3)[1], layer(x3[1]))
    # keras-rs' code starts the bias at zeros (its docs say ones).
    assert torch.equal(FeatureCross(6).cross.bias(0), torch.zeros(6))


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank"), ({"rank": -2}, "rank"), ({"diag_scale": -1.0}, "diag_scale"),
    ({"num_experts": 2}, "rank"), ({"kind": "vectr"}, "kind"), ({"activation": "rleu"}, "activation"),
    ({"kernel_init": "foo"}, "kernel_init"), ({"kind": "vector", "rank": 2}, "vector"),
    ({"backend": "cuda"}, "backend"), ({"kernel_l2": -1}, "kernel_l2"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossNet(4, 2, **kwargs)


def test_bad_inputs():
    net = CrossNet(4, 1)
    with pytest.raises(ValueError, match="x0"):
        net(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating"):
        net(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="layer"):
        net.effective_weight(1)
    with pytest.raises(ValueError, match="in_features"):
        CrossNet(0, 1)
    with pytest.raises(ValueError, match="x must have x0's shape"):
        FeatureCross(4)(torch.randn(2, 4), torch.randn(3, 4))


# ------------------------------------------------------------------ state_dict keys and old files

# The keys and shapes CrossNet had before the variants were split out (L = 2, N = 5, r = 3,
# K = 4), in parameter order: an optimizer's state follows that order.
OLD_KEYS = [
    ({}, [("weight", (2, 5, 5)), ("bias_param", (2, 5))]),
    ({"use_bias": False}, [("weight", (2, 5, 5))]),
    ({"rank": 3}, [("u", (2, 5, 3)), ("v", (2, 3, 5)), ("bias_param", (2, 5))]),
    ({"rank": 3, "num_experts": 4}, [("u", (2, 4, 5, 3)), ("v", (2, 4, 3, 5)),
                                     ("c", (2, 4, 3, 3)), ("gate", (2, 4, 5)),
                                     ("bias_param", (2, 5))]),
    ({"kind": "vector"}, [("weight", (2, 5)), ("bias_param", (2, 5))]),
]


@pytest.mark.parametrize(("kwargs", "expected"), OLD_KEYS)
def test_state_dict_keys_and_parameter_order_are_the_old_ones(kwargs, expected):
    net = CrossNet(5, 2, **kwargs)
    assert [(k, tuple(t.shape)) for k, t in net.state_dict().items()] == expected
    assert [(k, tuple(p.shape)) for k, p in net.named_parameters()] == expected
    kernels = [k for k, _ in expected if k != "bias_param"]
    assert [id(p) for p in net.kernels()] == [id(getattr(net, k)) for k in kernels]
    # FeatureCross wraps one such CrossNet under "cross.".
    if "num_experts" not in kwargs and "kind" not in kwargs:
        fc = FeatureCross(5, projection_dim=kwargs.get("rank"), use_bias=kwargs.get("use_bias", True))
        assert [k for k in fc.state_dict()] == [f"cross.{k}" for k, _ in expected]


COMPAT_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "compat_v1"
# Each compatibility model with a cross network: its prefix and the CrossNet it was built as.
COMPAT_CROSS = {
    "dcn_full": ("cross.", (14, 3), {}),
    "dcn_lowrank_parallel_terms": ("cross.", (14, 3), {"rank": 3}),
    "dcn_mix": ("cross.", (14, 3), {"rank": 2, "num_experts": 3}),
    "dcn_vector": ("cross.", (14, 3), {"kind": "vector"}),
    "dlrm_dcn": ("interaction.", (16, 2), {"rank": 2}),
}


def test_compat_fixture_cross_networks_are_the_ones_listed():
    safetensors = pytest.importorskip("safetensors")
    found = set()
    for path in sorted(COMPAT_DIR.glob("*/model.safetensors")):
        with safetensors.safe_open(str(path), "pt") as f:
            if any(k.startswith(("cross.", "interaction.")) and k.endswith("bias_param")
                   for k in f.keys()):
                found.add(path.parent.name)
    assert found == set(COMPAT_CROSS)


@pytest.mark.parametrize("name", list(COMPAT_CROSS))
def test_old_model_files_load_into_a_fresh_crossnet(name):
    load_file = pytest.importorskip("safetensors.torch").load_file
    prefix, sizes, kwargs = COMPAT_CROSS[name]
    saved = {k[len(prefix):]: t for k, t in load_file(str(COMPAT_DIR / name / "model.safetensors")).items()
             if k.startswith(prefix)}
    net = CrossNet(*sizes, **kwargs)
    net.load_state_dict(saved, strict=True)
    for key, tensor in saved.items():
        assert torch.equal(getattr(net, key), tensor), key
    # The loaded network computes the reference ops with the saved tensors (float64).
    net = net.double()
    w = {k: t.double() for k, t in saved.items()}
    x0 = _x(11, b=3, n=sizes[0])
    x = x0
    for layer in range(sizes[1]):
        b = w["bias_param"][layer]
        if "weight" in w and w["weight"].dim() == 2:
            x = reference.vector_cross_layer(x0, x, w["weight"][layer], b)
        elif "weight" in w:
            x = reference.cross_layer(x0, x, w["weight"][layer], b)
        elif "gate" in w:
            x = reference.mixture_cross_layer(x0, x, *(w[k][layer] for k in ("u", "v", "c", "gate")), b)
        else:
            x = reference.low_rank_cross_layer(x0, x, w["u"][layer], w["v"][layer], b)
    assert_close(net(x0), x)


def test_weights_are_read_at_call_time_after_an_assigning_load():
    """load_state_dict(assign=True) replaces the registered parameters; the net must use them."""
    for kwargs in ({}, {"rank": 2}, {"rank": 2, "num_experts": 2}, {"kind": "vector"}):
        net, other = CrossNet(4, 2, **kwargs).double(), _randomize(CrossNet(4, 2, **kwargs).double())
        net.load_state_dict(other.state_dict(), assign=True)
        x0 = _x(12, b=2, n=4)
        assert torch.equal(net(x0), other(x0))
        assert torch.equal(net.effective_weight(1), other.effective_weight(1))


# ------------------------------------------------------------------------ backend, chosen once


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "vector"}, "vector cross variant has no fused kernel"),
    ({"rank": 2, "num_experts": 3}, "mixture cross variant has no fused kernel"),
    ({"activation": "tanh"}, "full rank cross kernel does not fuse activation='tanh'"),
    ({"rank": 2, "activation": "gelu"}, "low rank cross kernel does not fuse activation='gelu'"),
])
def test_forced_triton_without_a_kernel_raises_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossNet(4, 2, backend="triton", **kwargs)
    # "auto" settles on the reference, once, for the same network.
    assert CrossNet(4, 2, backend="auto", **kwargs).forward_backend == "reference"


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2}, {"activation": "relu", "diag_scale": 0.5},
                                    {"rank": 2, "activation": "linear"}])
def test_backend_with_a_kernel_is_kept_for_the_call(kwargs):
    for backend in ("auto", "triton", "reference"):
        assert CrossNet(4, 2, backend=backend, **kwargs).forward_backend == backend


def test_forced_triton_that_cannot_run_raises_at_the_call(monkeypatch):
    """CPU tensors without the interpreter (or no Triton at all): a RuntimeError, no fallback."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    net = CrossNet(4, 2, rank=2, backend="triton")
    with pytest.raises(RuntimeError, match="backend='triton' cannot run cross_stack"):
        net(torch.randn(3, 4))
    # layer_forward is documented to run the reference whatever the backend.
    assert net.layer_forward(0, torch.ones(1, 4), torch.ones(1, 4)).shape == (1, 4)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" or importlib.util.find_spec("triton") is None,
                    reason="runs the fused kernel under Triton's CPU interpreter")
@pytest.mark.parametrize("kwargs", [{"diag_scale": 0.5, "activation": "relu"}, {"rank": 3}])
def test_forced_triton_crossnet_matches_the_reference_crossnet(kwargs):
    fused = _randomize(CrossNet(N, 2, backend="triton", **kwargs).double())
    ref = CrossNet(N, 2, backend="reference", **kwargs).double()
    ref.load_state_dict(fused.state_dict())
    for b in (1, B):
        x0 = _x(13, b=b).requires_grad_()
        out_f, out_r = fused(x0), ref(x0)
        assert_close(out_f, out_r)
        grads_f = torch.autograd.grad(out_f.square().sum(), [x0, *fused.parameters()])
        grads_r = torch.autograd.grad(out_r.square().sum(), [x0, *ref.parameters()])
        for got, want in zip(grads_f, grads_r, strict=True):
            assert_close(got, want)


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2}, {"kind": "vector"},
                                    {"rank": 2, "num_experts": 3, "activation": "tanh"}])
def test_forward_is_the_loop_of_its_variants_layers_at_batch_one(kwargs):
    net = _randomize(CrossNet(N, 3, **kwargs).double())
    x0 = _x(14, b=1)
    x = x0
    for layer in range(3):
        x = net.variant.layer_forward(dict(net.named_parameters()), layer, x0, x,
                                      net.bias_param[layer])
    assert_close(net(x0), x)
    assert_close(net(x0)[0], net(torch.cat([x0, _x(15)]))[0])


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2}])
def test_forward_at_batch_one_matches_the_per_sample_formula(kwargs):
    net = _randomize(CrossNet(N, 3, diag_scale=0.3, **kwargs).double())
    x0 = _x(16, b=1)
    ws = [net.effective_weight(i) - 0.3 * torch.eye(N, dtype=torch.float64) for i in range(3)]
    assert_close(net(x0), per_sample_matrix(x0, ws, [net.bias(i) for i in range(3)], 0.3))
