"""Pure-PyTorch reference ops: the executable specification of every crossrank operator.

They are also what the layers compute with, on every device, wherever no fused kernel runs:
the cross variants (``crossrank.layers.cross_variants``) and ``ProjectionInteraction`` call
them directly, and ``crossrank.ops.dispatch`` runs them for the cross stack and the dot
interaction under ``backend="reference"``, or under "auto" when the kernel cannot take the
tensors. One exception: ``factorization_machine`` is the O(F^2 K) definition, which the tests
hold ``FactorizationMachine``'s O(F K) identity to. The tests compare the fast kernels against
these in float64, and the benchmarks time them as the "eager" baseline. Every op works on the
whole batch at once (the cross layers as matrix products, never per-sample ``(B, N, 1)``
batched products).

Shape symbols (one table for the whole package):
    B batch, F categorical fields, D embedding dim, N cross width, r rank, K experts, L layers,
    T tasks (labels) of a multi-task model, H a body's output width.

Weight layouts (stacked over layers so a kernel sees one pointer; each layer's slice is its
own parameter data, never shared):
    full rank:  weight (L, N, N) acting as ``W @ x`` (row form ``x @ W.T``), bias (L, N)
    low rank:   U (L, N, r), V (L, r, N), so ``W = U @ V``
    vector:     weight (L, N), bias (L, N)
    mixture:    U (L, K, N, r), V (L, K, r, N), C (L, K, r, r), gate (L, K, N), bias (L, N)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Activation = Callable[[Tensor], Tensor] | None


def _act(h: Tensor, activation: Activation) -> Tensor:
    return h if activation is None else activation(h)


def cross_layer(
    x0: Tensor,
    xl: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    *,
    diag_scale: float = 0.0,
    activation: Activation = None,
) -> Tensor:
    """One full-rank DCN-V2 cross layer.

    ``x_{l+1} = x0 * (act(W x_l + b) + diag_scale * x_l) + x_l``

    Shape:
        x0, xl: (B, N); weight: (N, N); bias: (N,) or None; returns (B, N).

    Example:
        >>> x = torch.ones(2, 3)
        >>> cross_layer(x, x, torch.eye(3), torch.zeros(3)).tolist()
        [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """
    h = torch.nn.functional.linear(xl, weight, bias)  # (B, N): W x_l + b in one addmm
    h = _act(h, activation)
    if diag_scale:
        h = h + diag_scale * xl
    return torch.addcmul(xl, x0, h)  # x0 * h + x_l in one pass


def low_rank_cross_layer(
    x0: Tensor,
    xl: Tensor,
    u: Tensor,
    v: Tensor,
    bias: Tensor | None,
    *,
    diag_scale: float = 0.0,
    activation: Activation = None,
) -> Tensor:
    """One low-rank cross layer, ``W = U V``; the activation is keras-rs' pre-activation.

    ``x_{l+1} = x0 * (act(U (V x_l) + b) + diag_scale * x_l) + x_l``

    Shape:
        x0, xl: (B, N); u: (N, r); v: (r, N); bias: (N,) or None; returns (B, N).

    Example:
        >>> x = torch.ones(1, 2)
        >>> low_rank_cross_layer(x, x, torch.ones(2, 1), torch.ones(1, 2), None).tolist()
        [[3.0, 3.0]]
    """
    h = torch.nn.functional.linear(xl @ v.T, u, bias)  # (B, r) -> (B, N), bias in the addmm
    h = _act(h, activation)
    if diag_scale:
        h = h + diag_scale * xl
    return torch.addcmul(xl, x0, h)  # x0 * h + x_l in one pass


def vector_cross_layer(x0: Tensor, xl: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """One DCN (v1) cross layer: ``x_{l+1} = x0 * (x_l . w) + b + x_l`` (bias outside).

    Shape:
        x0, xl: (B, N); weight: (N,); bias: (N,) or None; returns (B, N).

    Example:
        >>> x = torch.tensor([[1.0, 2.0]])
        >>> vector_cross_layer(x, x, torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])).tolist()
        [[2.5, 4.5]]
    """
    # a matrix product (B, N) @ (N, 1), not a matrix-vector one: MKL keeps products, not
    # matrix-vector ones, bit-identical on any thread count (crossrank.reproducible)
    s = (xl @ weight.unsqueeze(1)).squeeze(1)  # (B, 1) -> (B,)
    out = x0 * s.unsqueeze(1) + xl  # (B, N)
    if bias is not None:
        out = out + bias
    return out


def mixture_gates(xl: Tensor, gate: Tensor) -> Tensor:
    """Softmax gate of a DCN-Mix layer over its input: ``softmax(G x_l)``.

    Shape:
        xl: (B, N); gate: (K, N); returns (B, K), rows summing to 1.
    """
    return torch.softmax(xl @ gate.T, dim=-1)  # (B, K)


def mixture_cross_layer(
    x0: Tensor,
    xl: Tensor,
    u: Tensor,
    v: Tensor,
    c: Tensor,
    gate: Tensor,
    bias: Tensor | None,
    *,
    diag_scale: float = 0.0,
    activation: Activation = None,
) -> Tensor:
    """One DCN-Mix layer: K low-rank experts mixed by a softmax gate over ``x_l``.

    ``E_k = x0 * (U_k g(C_k g(V_k x_l)) + b + diag_scale * x_l)``,
    ``x_{l+1} = sum_k softmax(G x_l)_k E_k + x_l``.

    Because the gate weights sum to one, ``sum_k p_k E_k = x0 * (sum_k p_k U_k(...) + b + ...)``:
    the experts run as three batched products and a single elementwise pass, no expert loop.

    Shape:
        x0, xl: (B, N); u: (K, N, r); v: (K, r, N); c: (K, r, r); gate: (K, N);
        bias: (N,) or None; returns (B, N).

    Example:
        >>> x = torch.ones(2, 3)
        >>> u, v, c = torch.zeros(2, 3, 1), torch.zeros(2, 1, 3), torch.zeros(2, 1, 1)
        >>> mixture_cross_layer(x, x, u, v, c, torch.zeros(2, 3), None).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    p = mixture_gates(xl, gate)  # (B, K)
    z = _act(torch.einsum("bn,krn->bkr", xl, v), activation)  # (B, K, r)
    z = _act(torch.einsum("bkr,kqr->bkq", z, c), activation)  # (B, K, r)
    # Contract experts and the rank in one product: (B, K*r) @ (K*r, N).
    pz = (z * p.unsqueeze(-1)).reshape(z.shape[0], -1)  # (B, K*r)
    h = pz @ u.permute(0, 2, 1).reshape(-1, u.shape[1])  # (B, N)
    if bias is not None:
        h = h + bias
    if diag_scale:
        h = h + diag_scale * xl
    return x0 * h + xl


def dot_interaction(dense: Tensor, sparse: Tensor, *, self_interaction: bool = False) -> Tensor:
    """DLRM's dot interaction: pairwise dot products of the dense vector and F embeddings.

    ``T = [dense; e_1; ...; e_F]`` (F+1 rows), ``Z = T T^T``; the output is ``dense``
    followed by the strictly upper triangle of Z read row by row (the diagonal too when
    ``self_interaction``).

    Shape:
        dense: (B, D); sparse: (B, F, D); returns (B, D + (F+1)F/2), or
        (B, D + (F+1)(F+2)/2) with ``self_interaction``.

    Example:
        >>> d = torch.tensor([[1.0, 0.0]]); s = torch.tensor([[[2.0, 0.0], [0.0, 3.0]]])
        >>> dot_interaction(d, s).tolist()  # dense, <d,e1>, <d,e2>, <e1,e2>
        [[1.0, 0.0, 2.0, 0.0, 0.0]]
    """
    t = torch.cat([dense.unsqueeze(1), sparse], dim=1)  # (B, F+1, D)
    z = torch.bmm(t, t.transpose(1, 2))  # (B, F+1, F+1)
    rows, cols = triu_indices(t.shape[1], self_interaction, device=t.device)
    return torch.cat([dense, z[:, rows, cols]], dim=1)  # (B, D + P)


def factorization_machine(factors: Tensor) -> Tensor:
    """A factorization machine's pairwise term by its definition: ``sum_{i<j} <v_i, v_j>``.

    Shape:
        factors: (B, F, K) -> (B,).

    Example:
        >>> factorization_machine(torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]]])).tolist()
        [17.0]
    """
    num_fields = factors.shape[1]
    out = factors.new_zeros(factors.shape[0])
    for i in range(num_fields):
        for j in range(i + 1, num_fields):
            out = out + (factors[:, i] * factors[:, j]).sum(dim=1)
    return out


def triu_indices(
    n: int, self_interaction: bool, *, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Row and column indices of the interaction triangle, in output order (row-major)."""
    idx = torch.triu_indices(n, n, offset=0 if self_interaction else 1, device=device)
    return idx[0], idx[1]


def num_dot_interactions(num_vectors: int, self_interaction: bool) -> int:
    """Number of pairwise products for ``num_vectors`` = F+1 stacked vectors."""
    n = num_vectors
    return n * (n + 1) // 2 if self_interaction else n * (n - 1) // 2


def projection_product(y: Tensor, z: Tensor, dim: int) -> Tensor:
    """Core of DLRM's projection interaction: ``(B, F1, D) @ (B, D, F2)``, flattened.

    Shape:
        y: (B, F1*D); z: (B, D*F2); returns (B, F1*F2).

    Example:
        >>> projection_product(torch.ones(1, 4), torch.ones(1, 6), 2).shape
        torch.Size([1, 6])
    """
    b = y.shape[0]
    out = torch.bmm(y.reshape(b, -1, dim), z.reshape(b, dim, -1))  # (B, F1, F2)
    return out.reshape(b, -1)  # (B, F1*F2)
