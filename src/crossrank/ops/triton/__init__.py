"""Fused Triton kernels for the cross network and the dot interaction, behind a guarded import.

The dispatcher (``crossrank.ops.dispatch``) asks ``*_supported`` first and only then calls
``fused_*``; Triton itself is imported lazily by the ``*_function`` modules, so this package
imports (and answers "unsupported") on machines without Triton. Kernels run on CUDA, or on the
CPU under Triton's interpreter when ``TRITON_INTERPRET=1`` (that is how CI tests them).

Layout: ``*_kernels.py`` (Triton kernels) -> ``*_function.py`` (launchers, autograd.Function)
-> this module (support checks, argument validation).
"""

from __future__ import annotations

from torch import Tensor

from crossrank.ops.triton import _runtime

__all__ = ["cross_stack_supported", "dot_supported", "fused_cross_stack", "fused_dot_interaction"]

# Activations the cross kernels fuse; any other runs the reference under backend="auto" and is
# an error under backend="triton" (CrossNet raises in its constructor, cross_stack at the call).
FUSED_ACTIVATIONS = (None, "linear", "relu")
# F+1 above this would not fit one (FP, FP) interaction tile per sample in registers.
DOT_MAX_VECTORS = 128
_INT32_MAX = 2**31 - 1


def _refuse(op: str, reason: str | None, forced: bool) -> bool:
    if reason is not None and forced:
        raise RuntimeError(f"backend='triton' cannot run {op}: {reason}")
    return reason is None


def _cross_reason(x0: Tensor, weight: Tensor | None, u: Tensor | None, v: Tensor | None,
                  activation: str | None, forced: bool) -> str | None:
    if not _runtime.HAS_TRITON:
        return _runtime.NO_TRITON
    if activation not in FUSED_ACTIVATIONS:
        return f"activation {activation!r} is not fused (only {FUSED_ACTIVATIONS})"
    if weight is not None:
        mats = [weight]
        if weight.dim() != 3 or x0.dim() != 2:
            return "expected x0 (B, N) and weight (L, N, N)"
        num_layers, rank = weight.shape[0], x0.shape[-1]
    elif u is not None and v is not None:
        mats = [u, v]
        if u.dim() != 3 or v.dim() != 3 or x0.dim() != 2:
            return "expected x0 (B, N), u (L, N, r) and v (L, r, N)"
        num_layers, rank = u.shape[0], u.shape[2]
    else:
        return "neither weight nor u and v were given"
    if num_layers == 0:
        return "the stack has no layers"
    # Layer offsets inside the kernels are 32-bit.
    if num_layers * x0.shape[0] * max(x0.shape[1], rank) > _INT32_MAX:
        return "L * B * max(N, r) exceeds 2**31 - 1"
    return _runtime.device_reason(x0, *mats, forced=forced)


def cross_stack_supported(x0: Tensor, *, weight: Tensor | None, u: Tensor | None,
                          v: Tensor | None, activation: str | None, forced: bool) -> bool:
    """Whether ``fused_cross_stack`` can run these inputs; raises RuntimeError when ``forced``
    and it cannot (never a silent fallback for ``backend="triton"``).

    Example:
        >>> import torch
        >>> x0, w = torch.randn(4, 8), torch.randn(2, 8, 8)
        >>> cross_stack_supported(x0, weight=w, u=None, v=None, activation="gelu", forced=False)
        False
    """
    return _refuse("cross_stack", _cross_reason(x0, weight, u, v, activation, forced),
                   forced)


def fused_cross_stack(x0: Tensor, *, weight: Tensor | None = None, u: Tensor | None = None,
                      v: Tensor | None = None, bias: Tensor | None, diag_scale: float,
                      activation: str | None) -> Tensor:
    """L fused cross layers ``x_{l+1} = x0 * (act(W_l x_l + b_l) + diag_scale * x_l) + x_l``.

    Full rank with ``weight``, low rank (``W_l = U_l V_l``) with ``u`` and ``v``; differentiable
    in x0, the weights and the bias. Call ``cross_stack_supported`` first.

    Shape:
        x0: (B, N); weight: (L, N, N) or u: (L, N, r) and v: (L, r, N); bias: (L, N) or None;
        returns (B, N).
    """
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"activation must be one of {FUSED_ACTIVATIONS}, got {activation!r}")
    if (weight is None) == (u is None or v is None) or (weight is not None and u is not None):
        raise ValueError("give either weight, or both u and v")
    n = x0.shape[1]
    if weight is not None:
        wu = weight
        if weight.shape[1:] != (n, n):
            raise ValueError(f"weight must be (L, {n}, {n}), got {tuple(weight.shape)}")
    else:
        assert u is not None and v is not None  # the check above: both are given
        wu = u
        if u.shape[1] != n or v.shape != (u.shape[0], u.shape[2], n):
            raise ValueError(f"u must be (L, {n}, r) and v (L, r, {n}), got "
                             f"{tuple(u.shape)} and {tuple(v.shape)}")
    if bias is not None:
        if bias.shape != (wu.shape[0], n):
            raise ValueError(f"bias must be (L, {n}), got {tuple(bias.shape)}")
        if bias.dtype != x0.dtype or bias.device != x0.device:
            raise TypeError(f"bias must be {x0.dtype} on {x0.device}, got {bias.dtype} on "
                            f"{bias.device}")
    from crossrank.ops.triton import cross_function

    return cross_function.cross_stack(x0, wu, v if weight is None else None, bias,
                                      diag_scale=diag_scale, relu=activation == "relu")


def _dot_reason(dense: Tensor, sparse: Tensor, forced: bool) -> str | None:
    if not _runtime.HAS_TRITON:
        return _runtime.NO_TRITON
    if dense.dim() != 2 or sparse.dim() != 3:
        return "expected dense (B, D) and sparse (B, F, D)"
    if sparse.shape[0] != dense.shape[0] or sparse.shape[2] != dense.shape[1]:
        return f"dense {tuple(dense.shape)} and sparse {tuple(sparse.shape)} do not match"
    if sparse.shape[1] == 0 or sparse.shape[2] == 0:
        return "F and D must be at least 1"
    if sparse.shape[1] + 1 > DOT_MAX_VECTORS:
        return f"F + 1 = {sparse.shape[1] + 1} exceeds {DOT_MAX_VECTORS}"
    if sparse.numel() > _INT32_MAX:
        return "B * F * D exceeds 2**31 - 1"
    return _runtime.device_reason(dense, sparse, forced=forced)


def dot_supported(dense: Tensor, sparse: Tensor, *, forced: bool) -> bool:
    """Whether ``fused_dot_interaction`` can run these inputs; raises RuntimeError when
    ``forced`` and it cannot.

    Example:
        >>> import torch
        >>> dot_supported(torch.randn(2, 4), torch.randn(2, 3, 5), forced=False)  # D differs
        False
    """
    return _refuse("dot_interaction", _dot_reason(dense, sparse, forced), forced)


def fused_dot_interaction(dense: Tensor, sparse: Tensor, *, self_interaction: bool) -> Tensor:
    """DLRM dot interaction ``[dense, triangle of T T^T]``, ``T = [dense; sparse]``, fused.

    Call ``dot_supported`` first; see ``crossrank.ops.reference.dot_interaction`` for the spec.

    Shape:
        dense: (B, D); sparse: (B, F, D); returns (B, D + (F+1)F/2), or (B, D + (F+1)(F+2)/2)
        with ``self_interaction``.
    """
    from crossrank.ops.triton import dot_function

    return dot_function.dot_interaction(dense, sparse, self_interaction=self_interaction)
