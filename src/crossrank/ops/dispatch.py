"""Run an op on the backend its layer chose: the reference ops or the fused Triton kernels.

What is known without tensors is decided once, in the layer's constructor: ``cross_backend``
turns ``CrossNet``'s ``backend`` into the one its ``forward`` passes here, and raises for a
forced ``"triton"`` on a variant or activation that has no fused kernel. What depends on the
tensors (device, dtype, sizes) is checked here, on every call:

* ``"reference"`` runs the reference op;
* ``"triton"`` runs the fused kernel, or raises RuntimeError saying why it cannot (Triton
  missing, CPU tensors without ``TRITON_INTERPRET=1``, an unsupported dtype or size): never a
  silent fallback;
* ``"auto"`` runs the fused kernel when the tensors are on CUDA, Triton imports and the
  shape/dtype is supported, and the reference otherwise.
"""

from __future__ import annotations

from typing import Literal, cast

from torch import Tensor

from crossrank.ops import reference
from crossrank.ops.activations import get_activation

Backend = Literal["auto", "reference", "triton"]
BACKENDS = ("auto", "reference", "triton")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def cross_backend(backend: str, *, variant: str, has_kernel: bool,
                  activation: str | None) -> Backend:
    """The backend a cross stack of this variant and activation runs under, chosen once.

    ``"reference"`` stays. A variant without a fused kernel (``has_kernel=False``: only full and
    low rank have one) or an activation the kernels do not fuse takes the reference under
    ``"auto"`` and raises ValueError, naming the variant, under ``"triton"``. Otherwise the
    requested backend, whose device, dtype and size checks ``cross_stack`` makes per call.

    Example:
        >>> cross_backend("auto", variant="mixture", has_kernel=False, activation=None)
        'reference'
        >>> cross_backend("auto", variant="low rank", has_kernel=True, activation="relu")
        'auto'
    """
    check_backend(backend)
    if backend == "reference":
        return "reference"
    from crossrank.ops.triton import FUSED_ACTIVATIONS

    if not has_kernel:
        problem = f"the {variant} cross variant has no fused kernel (full and low rank have one)"
    elif activation not in FUSED_ACTIVATIONS:
        problem = (f"the fused {variant} cross kernel does not fuse activation={activation!r} "
                   f"(only {FUSED_ACTIVATIONS})")
    else:
        return cast(Backend, backend)
    if backend == "triton":
        raise ValueError(f"backend='triton' cannot run this cross network: {problem}; use "
                         "backend='auto' or 'reference'")
    return "reference"


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
