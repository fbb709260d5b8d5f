"""Launchers and the autograd.Function of the fused dot interaction (imports Triton)."""

from __future__ import annotations

from typing import Any

import torch
import triton
from torch import Tensor
from torch.autograd.function import once_differentiable

from crossrank.ops.reference import num_dot_interactions
from crossrank.ops.triton import _runtime
from crossrank.ops.triton import dot_kernels as kern
from crossrank.ops.triton.common_kernels import tl_acc_dtype


def _config(num_vectors: int, dim: int) -> dict[str, int]:
    """Block sizes: BS samples per program, FP padded vectors, DC columns of D per step.

    On the GPU ~4K accumulator elements per program with 8 warps and 2 stages: checked to
    compile for sm_90 at F=26 (FP=32) with D=16 and D=128 in <= 64 KiB of shared memory and
    no register spills, so several programs share an SM (the op is memory-bound).
    """
    fp = max(16, triton.next_power_of_2(num_vectors))
    if _runtime.interpreting():
        return {"BS": 4, "FP": fp, "DC": 16, "num_warps": 4, "num_stages": 1}
    dc = min(32, max(16, triton.next_power_of_2(dim)))
    bs = max(1, min(8, 4096 // (fp * fp)))
    return {"BS": bs, "FP": fp, "DC": dc, "num_warps": 8, "num_stages": 2}


def _meta(x: Tensor) -> dict[str, Any]:
    return {
        "ACC": tl_acc_dtype(x.dtype),
        "PREC": _runtime.dot_precision(x.dtype),
        "UPCAST": _runtime.upcast_dot_operands(x.dtype),
    }


class DotInteractionFunction(torch.autograd.Function):
    """[dense, triangle of T T^T] with the fused (G + G^T) T backward."""

    @staticmethod
    def forward(ctx: Any, dense: Tensor, sparse: Tensor, self_interaction: bool) -> Tensor:
        dense, sparse = dense.contiguous(), sparse.contiguous()
        b, f, d = sparse.shape
        width = d + num_dot_interactions(f + 1, self_interaction)
        out = _runtime.empty((b, width), dtype=dense.dtype, device=dense.device)
        cfg = _config(f + 1, d)
        if b > 0:
            kern.dot_fwd_kernel[(triton.cdiv(b, cfg["BS"]),)](
                dense, sparse, out, b, f, d, width, SELF=self_interaction, **cfg, **_meta(dense))
        ctx.save_for_backward(dense, sparse)
        ctx.self_interaction = self_interaction
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        dense, sparse = ctx.saved_tensors
        b, f, d = sparse.shape
        gout = gout.to(dense.dtype).contiguous()
        gdense = _runtime.empty((b, d), dtype=dense.dtype, device=dense.device)
        gsparse = _runtime.empty((b, f, d), dtype=dense.dtype, device=dense.device)
        cfg = _config(f + 1, d)
        if b > 0:
            kern.dot_bwd_kernel[(triton.cdiv(b, cfg["BS"]),)](
                dense, sparse, gout, gdense, gsparse, b, f, d, gout.shape[1],
                SELF=ctx.self_interaction, **cfg, **_meta(dense))
        return gdense, gsparse, None


def dot_interaction(dense: Tensor, sparse: Tensor, *, self_interaction: bool) -> Tensor:
    """Fused dot interaction; inputs already validated (see ``crossrank.ops.triton``).

    Shape:
        dense: (B, D); sparse: (B, F, D); returns (B, D + P), P = (F+1)F/2 or (F+1)(F+2)/2.
    """
    return DotInteractionFunction.apply(dense, sparse, self_interaction)
