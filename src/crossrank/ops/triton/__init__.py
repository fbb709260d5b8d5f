"""Fused Triton kernels behind a guarded import (placeholder until the kernels land)."""

from __future__ import annotations

from torch import Tensor


def cross_stack_supported(x0: Tensor, *, weight, u, v, activation, forced: bool) -> bool:
    if forced:
        raise RuntimeError("backend='triton' requested but the Triton kernels are not available")
    return False


def dot_supported(dense: Tensor, sparse: Tensor, *, forced: bool) -> bool:
    if forced:
        raise RuntimeError("backend='triton' requested but the Triton kernels are not available")
    return False
