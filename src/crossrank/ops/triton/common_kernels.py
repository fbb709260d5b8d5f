"""Triton building blocks shared by the cross and interaction kernels (imports Triton)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def mma(a, b, acc, PREC: tl.constexpr, UPCAST: tl.constexpr):
    """``acc + a @ b`` on tiles (2D or batched 3D); every dimension must be >= 16."""
    if UPCAST:  # see _runtime.upcast_dot_operands: only ever set under the interpreter
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=PREC)


def tl_acc_dtype(dtype: torch.dtype) -> tl.dtype:
    """The ``tl`` accumulator dtype for a torch input dtype (float64 only under the interpreter)."""
    return tl.float64 if dtype == torch.float64 else tl.float32
