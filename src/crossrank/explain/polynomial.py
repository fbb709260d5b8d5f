"""The learned polynomial of a small dense-only cross model, expanded exactly.

With no activation, L cross layers and a linear output form a polynomial of degree L + 1 in
the inputs ``x = x0``. Matrix kinds (full rank, low rank, with ``diag_scale`` folded into the
effective matrix W): ``x_{l+1,i} = x0_i (sum_j W_ij x_{l,j} + b_i) + x_{l,i}`` (the bias is
multiplied by ``x0_i``). DCN v1 (vector kind): ``x_{l+1,i} = x0_i (w . x_l) + b_i + x_l,i``
(bias outside). Then ``logit = w_out^T x_L + c``, plus the first-order term's ``w_d . x`` when
the model carries one (its categorical part is absent from a dense-only model). Every
``x_{l,i}`` is held as a dense row of coefficients over all monomials of degree <= L + 1, and
multiplying by ``x0_i`` is an index shift, so the expansion is exact up to float64 rounding.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import torch
from torch import Tensor, nn

from crossrank.layers.first_order import FirstOrder
from crossrank.models.dcn import DCN

MAX_MONOMIALS = 10_000


class Polynomial:
    """A polynomial ``sum_m c_m prod_j x_j^{e_mj}`` in named features.

    Args:
        coefficients: (M,) coefficients.
        exponents: (M, N) non-negative integer exponents, one row per monomial.
        feature_names: the N feature names.

    Shape:
        coefficients: (M,); exponents: (M, N); ``evaluate``: (B, N) -> (B,).

    Example:
        >>> p = Polynomial(torch.tensor([0.5, 2.0]), torch.tensor([[0, 0], [1, 1]]), ("a", "b"))
        >>> p.format(), p.coefficient(a=1, b=1), p.coefficient("a b")
        ('2.000 a b + 0.500', 2.0, 2.0)
        >>> p.evaluate(torch.tensor([[1.0, 3.0]])).tolist()
        [6.5]
    """

    def __init__(self, coefficients: Tensor, exponents: Tensor,
                 feature_names: tuple[str, ...] | list[str]) -> None:
        names = tuple(feature_names)
        if exponents.dim() != 2 or coefficients.shape != (exponents.shape[0],) \
                or exponents.shape[1] != len(names):
            raise ValueError(f"coefficients (M,), exponents (M, N) and N feature_names must "
                             f"agree, got {tuple(coefficients.shape)}, {tuple(exponents.shape)} "
                             f"and {len(names)} names")
        if torch.is_floating_point(exponents) or bool((exponents < 0).any()):
            raise ValueError("exponents must be non-negative integers")
        _check_names(names)
        self.coefficients = coefficients.detach().to(torch.float64)
        self.exponents = exponents.to(torch.long)
        self.feature_names = names
        self._index = {tuple(e): k for k, e in enumerate(self.exponents.tolist())}

    @property
    def degree(self) -> int:
        return int(self.exponents.sum(dim=1).max()) if len(self.exponents) else 0

    @property
    def terms(self) -> list[tuple[float, tuple[int, ...]]]:
        """Every ``(coefficient, exponents)``, zeros included, in the stored monomial order."""
        return [(c, tuple(e)) for c, e in zip(self.coefficients.tolist(), self.exponents.tolist())]

    def coefficient(self, monomial: str | tuple[int, ...] | None = None, /,
                    **exponents: int) -> float:
        """Coefficient of one monomial: ``"x1 x2^2"``, an exponent tuple, or ``x1=1, x2=2``.

        No arguments (or ``"1"``) is the constant term; a monomial beyond the degree is 0.
        """
        e = self._exponents_of(monomial, exponents)
        k = self._index.get(e)
        return 0.0 if k is None else float(self.coefficients[k])

    def format(self, *, top: int | None = None, threshold: float = 1e-6) -> str:
        """Terms with ``|c| > threshold``, largest ``|c|`` first (ties: higher degree first).

        ``top`` keeps the first ``top`` terms and ends with ``+ ...`` when terms were left out.
        """
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top <= 0):
            raise ValueError(f"top must be None or a positive int, got {top!r}")
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        kept = [(c, e) for c, e in self.terms if abs(c) > threshold]
        kept.sort(key=lambda t: (-abs(t[0]), -sum(t[1])))  # stable: lexicographic within ties
        shown = kept if top is None else kept[:top]
        if not shown:
            return "0"
        parts = []
        for k, (c, e) in enumerate(shown):
            body = " ".join(p for p in (_num(abs(c)), self._monomial_text(e)) if p)
            sign = ("-" if c < 0 else "") if k == 0 else (" - " if c < 0 else " + ")
            parts.append(sign + body)
        if len(shown) < len(kept):
            parts.append(f" + ... ({len(kept) - len(shown)} more)")
        return "".join(parts)

    def evaluate(self, x: Tensor) -> Tensor:
        """The polynomial at the rows of ``x``, in float64. Shape: (B, N) -> (B,)."""
        n = len(self.feature_names)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"x must be a (B, {n}) tensor, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        powers = x.to(torch.float64).unsqueeze(1) ** self.exponents  # (B, M, N)
        return powers.prod(dim=2) @ self.coefficients  # (B, M) @ (M,)

    def to_dict(self, *, threshold: float = 0.0) -> dict[str, Any]:
        """JSON-ready: feature names and the terms with ``|c| > threshold``."""
        return {"feature_names": list(self.feature_names), "degree": self.degree,
                "terms": [{"monomial": self._monomial_text(e) or "1", "exponents": list(e),
                           "coefficient": c} for c, e in self.terms if abs(c) > threshold]}

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return (f"Polynomial(degree={self.degree}, features={self.feature_names}, "
                f"terms={len(self.coefficients)})")

    def _monomial_text(self, e: tuple[int, ...]) -> str:
        return " ".join(name if p == 1 else f"{name}^{p}"
                        for name, p in zip(self.feature_names, e) if p)

    def _exponents_of(self, monomial: str | tuple[int, ...] | None,
                      named: dict[str, int]) -> tuple[int, ...]:
        n = len(self.feature_names)
        if monomial is not None and named:
            raise ValueError(f"give a monomial or keyword exponents, not both; got {monomial!r} "
                             f"and {named}")
        if isinstance(monomial, tuple):
            if len(monomial) != n or any(isinstance(p, bool) or not isinstance(p, int) or p < 0
                                         for p in monomial):
                raise ValueError(f"monomial must be {n} non-negative ints, got {monomial!r}")
            return monomial
        if isinstance(monomial, str):
            named = {}
            for token in monomial.replace("*", " ").split():
                if token == "1":
                    continue
                m = re.fullmatch(r"(.+?)(?:\^(\d+))?", token)
                assert m is not None  # the pattern matches any non-empty token
                named[m.group(1)] = named.get(m.group(1), 0) + int(m.group(2) or 1)
        elif monomial is not None:
            raise TypeError(f"monomial must be a str or a tuple of ints, got {monomial!r}")
        e = [0] * n
        for name, p in named.items():
            if name not in self.feature_names:
                raise ValueError(f"unknown feature {name!r}; features: {self.feature_names}")
            if isinstance(p, bool) or not isinstance(p, int) or p < 0:
                raise ValueError(f"exponent of {name!r} must be a non-negative int, got {p!r}")
            e[self.feature_names.index(name)] = p
        return tuple(e)


def polynomial_problem(model: nn.Module) -> str | None:
    """Why ``model`` has no exact polynomial form (None when it has one)."""
    if not isinstance(model, DCN):
        return (f"{type(model).__name__} is not a DCN whose cross network feeds a linear output "
                "(DNN and DLRM have no polynomial form)")
    net = model.cross
    if model.deep is not None:
        return ("the model has a deep network; a polynomial needs structure='cross_only' "
                "(or deep_layers=())")
    if model.schema.num_fields:
        return "the model has categorical (embedded) fields; a polynomial needs dense features only"
    for name, term in model.additive_terms().items():
        if not isinstance(term, FirstOrder):
            return f"the model's {name!r} term has no polynomial form here"
    if net.activation is not None:
        return f"the cross layers use activation={net.activation!r}; a polynomial needs None"
    if net.is_mixture:
        return (f"the cross network is a mixture of {net.num_experts} experts: its softmax gate "
                "makes it a rational function, not a polynomial")
    return None


def extract_polynomial(model: nn.Module, *, feature_names: tuple[str, ...] | list[str] | None = None,
                       max_monomials: int = MAX_MONOMIALS) -> Polynomial:
    """Expand a dense-only DCN (cross layers + linear output) into its exact polynomial.

    The result is the model's logit (its output before any sigmoid) as a polynomial of degree
    L + 1 in the N dense features, the first-order term's linear part included;
    ``Polynomial.evaluate`` equals the model's forward.

    Args:
        model: a DCN with dense features only, no deep network (structure "cross_only", or
            deep_layers=()), no cross activation and no mixture; a first-order term is fine.
        feature_names: N names (default: the schema's dense names).
        max_monomials: refuse when ``C(N + L + 1, L + 1)`` monomials exceed this (the expansion
            holds an (N, M) table per layer and is unreadable long before that).

    Shape:
        the polynomial takes (B, N) and returns (B,).

    Example:
        >>> from crossrank.models import DCN, DCNConfig, FeatureSchema
        >>> from crossrank.models import CrossConfig
        >>> m = DCN(FeatureSchema(dense=("a", "b")),
        ...         DCNConfig(structure="cross_only", cross=CrossConfig(num_layers=1, use_bias=False)))
        >>> with torch.no_grad():
        ...     _ = m.cross.weight.zero_()
        ...     m.cross.weight[0, 0, 1] = 2.0  # x0_a * 2 x_b
        ...     _ = m.output.weight.fill_(1.0)
        ...     _ = m.output.bias.zero_()
        >>> print(extract_polynomial(m).format())
        2.000 a b + 1.000 a + 1.000 b
    """
    problem = polynomial_problem(model)
    if problem is not None:
        raise ValueError(f"model has no exact polynomial form: {problem}")
    assert isinstance(model, DCN)  # polynomial_problem checked it
    net, output, schema = model.cross, model.output, model.schema
    n, layers = net.in_features, net.num_layers
    names = tuple(schema.dense if feature_names is None else feature_names)
    if len(names) != n:
        raise ValueError(f"feature_names must have {n} names, got {len(names)}: {names!r}")
    _check_names(names)
    degree = layers + 1
    count = math.comb(n + degree, degree)
    if isinstance(max_monomials, bool) or not isinstance(max_monomials, int) or max_monomials <= 0:
        raise ValueError(f"max_monomials must be a positive int, got {max_monomials!r}")
    if count > max_monomials:
        raise ValueError(f"the polynomial of {n} features and {layers} cross layers has {count} "
                         f"monomials of degree <= {degree}, over max_monomials={max_monomials}; "
                         "extract_polynomial is for small dense models")
    monomials = _monomials(n, degree)  # M tuples, degree ascending
    m = len(monomials)
    shift = _shift_table(monomials, degree)  # (N, M), index of m + e_i, or M past the degree
    x = torch.zeros(n, m, dtype=torch.float64)  # row i: coefficients of x_{l,i}
    x[torch.arange(n), torch.arange(1, n + 1)] = 1.0  # x0_i is the monomial e_i (index 1 + i)
    for layer in range(layers):
        w = net.effective_weight(layer).to(device="cpu", dtype=torch.float64)  # (N, N)
        b = net.bias(layer).to(device="cpu", dtype=torch.float64)  # (N,)
        h = w @ x  # (N, N) @ (N, M): coefficients of (W x_l)_i
        if net.kind == "matrix":
            h[:, 0] += b  # the bias sits inside the product with x0_i
        crossed = torch.zeros(n, m + 1, dtype=torch.float64).scatter_add_(1, shift, h)  # x0_i h_i
        x = crossed[:, :m] + x  # column M collects degree > L + 1, which is always zero here
        if net.kind == "vector":
            x[:, 0] += b  # DCN v1 adds the bias outside the product
    w_out = output.weight.detach().to(device="cpu", dtype=torch.float64).reshape(n)  # (N,)
    coefficients = w_out @ x  # (N,) @ (N, M)
    if output.bias is not None:
        coefficients[0] += float(output.bias.detach())
    for term in model.additive_terms().values():  # only FirstOrder: polynomial_problem checked
        if isinstance(term, FirstOrder):  # w_d . x, the linear monomials e_i (index 1 + i)
            coefficients[1:n + 1] += term.dense_weight.detach().to(device="cpu", dtype=torch.float64)
    return Polynomial(coefficients, torch.tensor(monomials, dtype=torch.long), names)


def _monomials(n: int, degree: int) -> list[tuple[int, ...]]:
    """All exponent tuples of total degree <= ``degree``: by degree, then lexicographic."""
    out = []
    for d in range(degree + 1):
        for combo in itertools.combinations_with_replacement(range(n), d):
            e = [0] * n
            for j in combo:
                e[j] += 1
            out.append(tuple(e))
    return out


def _shift_table(monomials: list[tuple[int, ...]], degree: int) -> Tensor:
    n, m = len(monomials[0]), len(monomials)
    index = {e: k for k, e in enumerate(monomials)}
    shift = torch.full((n, m), m, dtype=torch.long)
    for k, e in enumerate(monomials):
        if sum(e) < degree:
            for i in range(n):
                up = list(e)
                up[i] += 1
                shift[i, k] = index[tuple(up)]
    return shift


def _check_names(names: tuple[str, ...]) -> None:
    if any(not isinstance(s, str) or not s or any(ch.isspace() or ch in "^*" for ch in s)
           for s in names):
        raise ValueError(f"feature_names must be non-empty strs without spaces, '^' or '*', "
                         f"got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"feature_names must be unique, got {names!r}")


def _num(x: float) -> str:
    return f"{x:.3f}" if 1e-3 <= x < 1e5 else f"{x:.3e}"
