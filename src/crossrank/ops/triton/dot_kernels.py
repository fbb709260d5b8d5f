"""Triton kernels of DLRM's dot interaction (forward and backward).

Each program takes BS samples. T = [dense; e_1..e_F] is (F+1, D) per sample, padded to
(FP, D) with FP = next power of two >= max(F+1, 16) (tl.dot needs >= 16 in every dimension);
T is read in D-chunks of DC columns and never materialised in global memory.

Forward: Z = T T^T accumulated over D-chunks as one batched (BS, FP, FP) tl.dot; the output row
[dense, triangle of Z] is written directly (dense from the first chunk's row 0, the triangle by
a masked scatter of the Z tile to its row-major triangle offset).

Backward (seed 004): with G the (F+1, F+1) matrix the triangle gradient scatters into,
dL/dT = (G + G^T) T. G + G^T is gathered on chip (one masked load and a transpose), cast to
the input dtype (exact: the two triangles do not overlap, the diagonal doubles), and multiplied
by each D-chunk of T; row 0 plus the dense passthrough gradient is dL/ddense, rows 1..F are
dL/dsparse.
"""

from __future__ import annotations

import triton
import triton.language as tl

from crossrank.ops.triton.common_kernels import mma


@triton.jit
def _triangle_offsets(F1, FP: tl.constexpr, SELF: tl.constexpr):
    """(FP, FP) offsets of Z[i, j] within the flattened triangle, and the mask of its entries."""
    i = tl.arange(0, FP)[:, None]
    j = tl.arange(0, FP)[None, :]
    if SELF:
        valid = (i <= j) & (j < F1)
        off = i * F1 - (i * (i - 1)) // 2 + (j - i)
    else:
        valid = (i < j) & (j < F1)
        off = i * F1 - (i * (i + 1)) // 2 + (j - i - 1)
    return off, valid


@triton.jit
def _load_t(dense_ptr, sparse_ptr, sb, i3, d3, B, F, D):
    """T[b, i, d] for a (BS, FP, DC) block: row 0 from dense, rows 1..F from sparse, else 0."""
    ok = (sb < B) & (d3 < D)
    t = tl.load(dense_ptr + sb * D + d3 + i3 * 0, mask=ok & (i3 == 0), other=0.0)
    t += tl.load(sparse_ptr + sb * (F * D) + (i3 - 1) * D + d3,
                 mask=ok & (i3 >= 1) & (i3 <= F), other=0.0)
    return t


@triton.jit
def dot_fwd_kernel(
    dense_ptr, sparse_ptr, out_ptr, B, F, D, W,
    SELF: tl.constexpr, BS: tl.constexpr, FP: tl.constexpr, DC: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """out (B, W = D + P) = [dense, triangle of T T^T] for BS samples."""
    samples = tl.program_id(0) * BS + tl.arange(0, BS)
    sb = samples.to(tl.int64)[:, None, None]  # (BS, 1, 1)
    i3 = tl.arange(0, FP)[None, :, None]  # (1, FP, 1)
    z = tl.zeros((BS, FP, FP), dtype=ACC)
    for d0 in range(0, D, DC):
        d3 = d0 + tl.arange(0, DC)[None, None, :]  # (1, 1, DC)
        t = _load_t(dense_ptr, sparse_ptr, sb, i3, d3, B, F, D)  # (BS, FP, DC)
        z = mma(t, tl.permute(t, (0, 2, 1)), z, PREC, UPCAST)  # (BS, FP, FP)
        tl.store(out_ptr + sb * W + d3 + i3 * 0, t, mask=(sb < B) & (d3 < D) & (i3 == 0))
    off, valid = _triangle_offsets(F + 1, FP, SELF)
    tl.store(out_ptr + sb * W + D + off[None, :, :], z.to(out_ptr.dtype.element_ty),
             mask=(sb < B) & valid[None, :, :])


@triton.jit
def dot_bwd_kernel(
    dense_ptr, sparse_ptr, gout_ptr, gdense_ptr, gsparse_ptr, B, F, D, W,
    SELF: tl.constexpr, BS: tl.constexpr, FP: tl.constexpr, DC: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """gdense (B, D) and gsparse (B, F, D) from gout (B, W) for BS samples."""
    samples = tl.program_id(0) * BS + tl.arange(0, BS)
    sb = samples.to(tl.int64)[:, None, None]  # (BS, 1, 1)
    i3 = tl.arange(0, FP)[None, :, None]  # (1, FP, 1)
    off, valid = _triangle_offsets(F + 1, FP, SELF)
    g = tl.load(gout_ptr + sb * W + D + off[None, :, :], mask=(sb < B) & valid[None, :, :],
                other=0.0).to(ACC)  # (BS, FP, FP): G, zero off the triangle
    g = (g + tl.permute(g, (0, 2, 1))).to(dense_ptr.dtype.element_ty)  # G + G^T
    for d0 in range(0, D, DC):
        d3 = d0 + tl.arange(0, DC)[None, None, :]  # (1, 1, DC)
        t = _load_t(dense_ptr, sparse_ptr, sb, i3, d3, B, F, D)  # (BS, FP, DC)
        gt = mma(g, t, tl.zeros((BS, FP, DC), dtype=ACC), PREC, UPCAST)  # (BS, FP, DC)
        ok = (sb < B) & (d3 < D)
        row0 = ok & (i3 == 0)
        gd = gt + tl.load(gout_ptr + sb * W + d3 + i3 * 0, mask=row0, other=0.0).to(ACC)
        tl.store(gdense_ptr + sb * D + d3 + i3 * 0, gd.to(gdense_ptr.dtype.element_ty),
                 mask=row0)
        tl.store(gsparse_ptr + sb * (F * D) + (i3 - 1) * D + d3,
                 gt.to(gsparse_ptr.dtype.element_ty), mask=ok & (i3 >= 1) & (i3 <= F))
