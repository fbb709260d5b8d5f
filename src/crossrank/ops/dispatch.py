"""Choose between the reference ops and the fused Triton kernels, once per call site.

``backend="auto"`` takes the Triton kernel when the tensors are on CUDA, Triton imports and
the shape/dtype is supported, and the reference otherwise; ``"reference"`` and ``"triton"``
force one (forcing Triton where it cannot run is an error, never a silent fallback).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from crossrank.ops import reference
from crossrank.ops.activations import get_activation

Backend = Literal["auto", "reference", "triton"]
BACKENDS = ("auto", "reference", "triton")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _wants_triton(backend: str, x: Tensor) -> bool:
    """"auto" takes the kernels on CUDA tensors only; "triton" also runs them on the CPU under
    ``TRITON_INTERPRET=1`` (how CI tests them), where "auto" keeps the reference."""
    return backend == "triton" or (backend == "auto" and x.is_cuda)


def cross_stack(
    x0: Tensor,
    *,
    weight: Tensor | None = None,
    u: Tensor | None = None,
    v: Tensor | None = None,
    bias: Tensor | None,
    diag_scale: float = 0.0,
    activation: str | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Run L stacked full-rank (``weight``) or low-rank (``u``, ``v``) cross layers.

    Shape:
        x0: (B, N); weight: (L, N, N) or u: (L, N, r) with v: (L, r, N); bias: (L, N) or None;
        returns (B, N).
    """
    check_backend(backend)
    if _wants_triton(backend, x0):
        from crossrank.ops import triton as triton_ops

        if triton_ops.cross_stack_supported(x0, weight=weight, u=u, v=v, activation=activation,
                                            forced=backend == "triton"):
            return triton_ops.fused_cross_stack(
                x0, weight=weight, u=u, v=v, bias=bias, diag_scale=diag_scale,
                activation=activation,
            )
    act = get_activation(activation)
    num_layers = weight.shape[0] if weight is not None else u.shape[0]  # type: ignore[union-attr]
    x = x0
    for layer in range(num_layers):
        b = None if bias is None else bias[layer]
        if weight is not None:
            x = reference.cross_layer(x0, x, weight[layer], b, diag_scale=diag_scale,
                                      activation=act)
        else:
            x = reference.low_rank_cross_layer(x0, x, u[layer], v[layer], b,  # type: ignore[index]
                                               diag_scale=diag_scale, activation=act)
    return x


def dot_interaction(
    dense: Tensor, sparse: Tensor, *, self_interaction: bool = False, backend: Backend = "auto"
) -> Tensor:
    """DLRM dot interaction through the chosen backend; see ``reference.dot_interaction``.

    Shape:
        dense: (B, D); sparse: (B, F, D); returns (B, D + (F+1)F/2).
    """
    check_backend(backend)
    if _wants_triton(backend, dense):
        from crossrank.ops import triton as triton_ops

        if triton_ops.dot_supported(dense, sparse, forced=backend == "triton"):
            return triton_ops.fused_dot_interaction(dense, sparse,
                                                    self_interaction=self_interaction)
    return reference.dot_interaction(dense, sparse, self_interaction=self_interaction)
