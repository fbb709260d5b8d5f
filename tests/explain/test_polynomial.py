"""extract_polynomial: exact against the model's forward in float64, and it reads the demo."""

import dataclasses

import pytest
import torch

from crossrank.demo import POLY_FEATURES, run_polynomial
from crossrank.explain import Polynomial, extract_polynomial
from crossrank.models import (
    DCN,
    DLRM,
    DNN,
    CrossConfig,
    DCNConfig,
    DLRMConfig,
    DNNConfig,
    FeatureSchema,
    build_model,
)
from tolerances import assert_close

CROSS_OPTIONS = {f.name for f in dataclasses.fields(CrossConfig)}


def _dense_dcn(n, *, seed=0, **options):
    """A dense-only DCN with random weights; cross options (num_layers, rank, ...) by name."""
    names = tuple(f"x{i + 1}" for i in range(n))
    options.setdefault("structure", "cross_only")
    options.setdefault("rank", None)  # full rank and 3 layers unless given (DCN's defaults
    options.setdefault("num_layers", 3)  # are low rank, 2 layers)
    options = {f"cross.{k}" if k in CROSS_OPTIONS else k: v for k, v in options.items()}
    torch.manual_seed(seed)
    model = build_model("dcn", FeatureSchema(dense=names), options, task="regression").double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)
    return model


def _inputs(n, seed=1):
    return torch.randn(32, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("diag", [0.0, 0.4])
@pytest.mark.parametrize("use_bias", [True, False])
def test_expansion_equals_forward(n, layers, rank, diag, use_bias):
    model = _dense_dcn(n, num_layers=layers, rank=rank, diag_scale=diag, use_bias=use_bias)
    poly = extract_polynomial(model)
    assert poly.degree == layers + 1
    x = _inputs(n)
    with torch.no_grad():
        assert_close(poly.evaluate(x), model(x))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_vector_kind_equals_forward(layers):
    """DCN v1 adds its bias outside the product with x0: a different expansion, same check."""
    model = _dense_dcn(4, num_layers=layers, kind="vector")
    x = _inputs(4, seed=2)
    with torch.no_grad():
        assert_close(extract_polynomial(model).evaluate(x), model(x))


@pytest.mark.parametrize("structure", ["stacked", "parallel"])
def test_structures_without_a_deep_network(structure):
    model = _dense_dcn(3, num_layers=2, structure=structure, deep_layers=())
    x = _inputs(3, seed=3)
    with torch.no_grad():
        assert_close(extract_polynomial(model).evaluate(x), model(x))


@pytest.mark.parametrize("kind", ["matrix", "vector"])
@pytest.mark.parametrize("structure", ["cross_only", "parallel"])
def test_the_first_order_term_is_in_the_polynomial(kind, structure):
    """logit = cross part + w_d . x: the term's dense weights add to the linear monomials."""
    model = _dense_dcn(4, num_layers=2, kind=kind, structure=structure, deep_layers=(),
                       **{"terms.first_order": True, "terms.first_order_l2": 0.1})
    w_d = model.first_order.dense_weight.detach().clone()
    assert w_d.abs().min() > 0  # random, nonzero first-order weights
    x = _inputs(4, seed=4)
    poly = extract_polynomial(model)
    with torch.no_grad():
        assert_close(poly.evaluate(x), model(x))
        model.first_order.dense_weight.zero_()
    without = extract_polynomial(model)
    difference = poly.coefficients - without.coefficients
    assert_close(difference[1:5], w_d)  # the monomials x1 .. x4
    assert_close(difference[5:], torch.zeros_like(difference[5:]))
    assert difference[0] == 0


def test_one_layer_coefficients_by_hand():
    """logit = w^T (x * (W x + b) + x) + c: x_i x_j -> w_i W_ij + w_j W_ji, x_i -> w_i (b_i + 1)."""
    model = _dense_dcn(3, num_layers=1, diag_scale=0.25)
    w_mat = model.cross.weight[0].detach() + 0.25 * torch.eye(3, dtype=torch.float64)
    b = model.cross.bias_param[0].detach()
    w, c = model.output.weight.detach()[0], float(model.output.bias.detach())
    p = extract_polynomial(model, feature_names=("a", "b", "c"))
    assert p.coefficient() == pytest.approx(c, abs=1e-12)
    for i, name in enumerate("abc"):
        assert p.coefficient(**{name: 1}) == pytest.approx(float(w[i] * (b[i] + 1)), abs=1e-12)
        assert p.coefficient(**{name: 2}) == pytest.approx(float(w[i] * w_mat[i, i]), abs=1e-12)
    expected_ab = float(w[0] * w_mat[0, 1] + w[1] * w_mat[1, 0])
    assert p.coefficient("a b") == pytest.approx(expected_ab, abs=1e-12)
    assert p.coefficient((1, 1, 0)) == p.coefficient(a=1, b=1) == p.coefficient("a*b")
    assert p.coefficient(a=3) == 0.0  # beyond the degree
    assert len(p.terms) == 10  # C(3 + 2, 2) monomials of degree <= 2


def test_demo_polynomial_is_recovered():
    """The demo's one cross layer learns y = x1^2 + x1 x2 + x2 x3 + x3^2 and nothing else."""
    _, model = run_polynomial(epochs=1000, deep_epochs=1, num_rows=10_000)
    poly = extract_polynomial(model, feature_names=POLY_FEATURES)
    true = {(2, 0, 0): 1.0, (1, 1, 0): 1.0, (0, 1, 1): 1.0, (0, 0, 2): 1.0}
    for coefficient, exponents in poly.terms:
        assert abs(coefficient - true.get(exponents, 0.0)) < 1e-3, (exponents, coefficient)
    head = poly.format(top=4, threshold=1e-3)
    assert sorted(head.split(" + ")) == ["1.000 x1 x2", "1.000 x1^2", "1.000 x2 x3", "1.000 x3^2"]


def test_format_orders_signs_and_truncates():
    p = Polynomial(torch.tensor([0.5, -2.0, 1e-8, 3.0]),
                   torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]]), ("a", "b"))
    assert p.format() == "3.000 a b - 2.000 a + 0.500"
    assert p.format(top=1) == "3.000 a b + ... (2 more)"
    assert p.format(threshold=0.0) == "3.000 a b - 2.000 a + 0.500 + 1.000e-08 b"
    assert Polynomial(torch.tensor([-1.5]), torch.tensor([[2, 0]]), ("a", "b")).format() == \
        "-1.500 a^2"
    assert p.to_dict()["terms"][1] == {"monomial": "a", "exponents": [1, 0], "coefficient": -2.0}
    with pytest.raises(ValueError, match="unknown feature 'z'"):
        p.coefficient(z=1)
    with pytest.raises(ValueError, match="not both"):
        p.coefficient("a", b=1)
    with pytest.raises(ValueError, match="top"):
        p.format(top=0)


@pytest.mark.parametrize("model, match", [
    (DCN(FeatureSchema(dense=("a", "b")), DCNConfig(deep_layers=(4,))), "deep network"),
    (DCN(FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,), embedding_dim=2),
         DCNConfig(structure="cross_only")), "dense features only"),
    (DCN(FeatureSchema(dense=("a", "b")), DCNConfig(structure="cross_only",
                                                    cross=CrossConfig(activation="relu"))),
     "activation"),
    (DCN(FeatureSchema(dense=("a", "b")), DCNConfig(structure="cross_only",
                                                    cross=CrossConfig(rank=1, num_experts=2))),
     "mixture"),
    (DNN(FeatureSchema(dense=("a", "b")), DNNConfig(deep_layers=(4,))), "not a DCN"),
    (DLRM(FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,), embedding_dim=2),
          DLRMConfig(bottom_layers=(2,), top_layers=(4,), interaction="dcn",
                     cross=CrossConfig(rank=1))),
     "not a DCN"),
])
def test_models_without_a_polynomial_form_are_refused(model, match):
    with pytest.raises(ValueError, match=match):
        extract_polynomial(model)


def test_size_limit_and_names():
    big = _dense_dcn(16, num_layers=4)  # C(21, 5) = 20349 monomials
    with pytest.raises(ValueError, match="20349 monomials"):
        extract_polynomial(big)
    assert extract_polynomial(_dense_dcn(16, num_layers=3)).degree == 4  # 4845 monomials
    with pytest.raises(ValueError, match="max_monomials=10"):
        extract_polynomial(_dense_dcn(3), max_monomials=10)
    with pytest.raises(ValueError, match="feature_names must have 3"):
        extract_polynomial(_dense_dcn(3), feature_names=("a", "b"))
    with pytest.raises(ValueError, match="without spaces"):
        extract_polynomial(_dense_dcn(2), feature_names=("a b", "c"))
