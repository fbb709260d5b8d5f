"""Triton kernels of the fused cross-network stack (forward and backward).

Per layer l (row form, x_l of shape (B, N)):
    h_l = x_l W_l^T + b_l          (low rank: z_l = x_l V_l^T, h_l = z_l U_l^T + b_l)
    x_{l+1} = x0 * (act(h_l) + diag * x_l) + x_l
and, with g = dL/dx_{l+1}:
    gh_l = g * x0 * act'(h_l)                      -> dW_l = gh_l^T x_l, db_l = sum_B gh_l
    dL/dx0 += g * (act(h_l) + diag * x_l)
    dL/dx_l = g * (1 + diag * x0) + gh_l W_l        (low rank: gz_l = gh_l U_l, + gz_l V_l)

Two drivers share the tile helpers:
* row-tile kernels (``cross_*_rowtile_kernel``): one program owns BM rows through all L layers;
  a layer's output tile goes to a scratch/saved buffer that the same program reads back (L2-hot)
  as the next layer's GEMM operand, with a CTA barrier between layers. For N up to ~1024.
* layer kernels (``cross_*_layer_kernel``): one GEMM per layer over a 2D grid, the elementwise
  part of the layer fused into the epilogue (forward) or the previous layer's elementwise
  backward fused into the dX GEMM's epilogue (backward). For any N.

All (B, N) buffers are contiguous with row stride N, (B, r) buffers with row stride R; stacked
per-layer buffers are (L, B, N) with layer stride ``s_xl`` = B*N (``s_zl`` = B*R).

Names mean one thing throughout the file (``*s_ptr`` stacks layers, ``*l_ptr`` is layer l's
and ``*p_ptr`` layer l-1's slice):
    x0_ptr, xl_ptr, xs_ptr    x0, x_l (B, N); x_1..x_{L-1} (L-1, B, N)
    dst_ptr, out_ptr          a layer's output x_{l+1}; the stack's output x_L (B, N)
    bias_ptr, bl_ptr          the stacked biases (L, N); b_l (N,)
    hl_ptr, hs_ptr            pre-activations h_l (B, N); all of them (L, B, N)
    zl_ptr, zs_ptr            z_l = x_l V_l^T (B, r); all of them (L, B, r)
    ghl_ptr, ghs_ptr          dL/dh_l (B, N); all of them (L, B, N); likewise gzl_ptr, gzs_ptr
    gout_ptr                  dL/dx_L, the gradient of the stack's output
    gx0_ptr, carry_ptr        dL/dx0 and the skip/diag part of dL/dx_l (accumulator dtype)
    wu_ptr                    the stacked weight whose product gives h: W (L, N, N), or U
                              (L, N, r) when LOW_RANK; strides swu_l, swu_row, swu_col
    v_ptr                     the stacked V (L, r, N), read when LOW_RANK; strides sv_l, sv_row,
                              sv_col
    src_ptr, src_stride       a GEMM's left operand, row-major: x_l, z_l, gh_l or gz_l
    mat_ptr, mat_sn, mat_sk   a GEMM's right operand, one layer's W, U or V read as
                              ``mat[n, k]`` through the strides of its n and k axes
"""

from __future__ import annotations

import triton
import triton.language as tl

from crossrank.ops.triton.common_kernels import mma


@triton.jit
def _grouped_pid(pid, num_m, num_n, GROUP_M: tl.constexpr):
    # Consecutive programs share B-operand (weight) column blocks: better L2 reuse.
    width = GROUP_M * num_n
    first_m = (pid // width) * GROUP_M
    size = tl.minimum(num_m - first_m, GROUP_M)
    return first_m + (pid % width) % size, (pid % width) // size


@triton.jit
def _tile_matmul(src_ptr, src_stride, mat_ptr, mat_sn, mat_sk, rows, cols, M, N, K,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                 ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr):
    """acc[BM, BN] = src[rows, :K] @ mat[cols, :K]^T, src row-major (unit stride along K).

    ``src_ptr`` points at the tile's first row and ``rows`` count from it (``M`` rows remain),
    so per-element offsets stay 32-bit; likewise in the other helpers.
    """
    acc = tl.zeros((BM, BN), dtype=ACC)
    ks = tl.arange(0, BK)
    src_rows = src_ptr + rows[:, None] * src_stride  # (BM, 1)
    row_ok = rows[:, None] < M
    col_ok = cols[None, :] < N
    for k0 in range(0, K, BK):
        kk = k0 + ks
        # .cg: src may have been written earlier in this kernel by other threads of this CTA.
        src = tl.load(src_rows + kk[None, :], mask=row_ok & (kk[None, :] < K), other=0.0,
                      cache_modifier=".cg")  # (BM, BK)
        mat = tl.load(mat_ptr + kk[:, None] * mat_sk + cols[None, :] * mat_sn,
                      mask=(kk[:, None] < K) & col_ok, other=0.0)  # (BK, BN)
        acc = mma(src, mat, acc, PREC, UPCAST)
    return acc


@triton.jit
def _fwd_epilogue(acc, rows, cols, M, N, x0_ptr, xl_ptr, bl_ptr, hl_ptr, dst_ptr, diag,
                  HAS_BIAS: tl.constexpr, RELU: tl.constexpr, SAVE_H: tl.constexpr,
                  ACC: tl.constexpr):
    """dst = x0 * (act(acc + b_l) + diag * x_l) + x_l on one (BM, BN) tile; saves h if asked."""
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    off = rows[:, None] * N + cols[None, :]  # (BM, BN)
    h = acc
    if HAS_BIAS:
        h += tl.load(bl_ptr + cols, mask=cols < N, other=0.0).to(ACC)[None, :]
    if SAVE_H:
        tl.store(hl_ptr + off, h.to(hl_ptr.dtype.element_ty), mask=mask)
    if RELU:
        h = tl.maximum(h, 0.0)
    x0 = tl.load(x0_ptr + off, mask=mask, other=0.0).to(ACC)
    xl = tl.load(xl_ptr + off, mask=mask, other=0.0, cache_modifier=".cg").to(ACC)
    tl.store(dst_ptr + off, (x0 * (h + diag * xl) + xl).to(dst_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_elementwise(g, off, mask, x0_ptr, xl_ptr, hl_ptr, ghl_ptr, gx0_ptr, carry_ptr, diag,
                     RELU: tl.constexpr, FIRST: tl.constexpr, ACC: tl.constexpr):
    """Backward through layer l's elementwise part on one tile, g = dL/dx_{l+1} (ACC dtype).

    Writes gh_l, accumulates dL/dx0 (initialises it when FIRST) and leaves the skip/diag part
    of dL/dx_l, ``g * (1 + diag * x0)``, in ``carry`` for the dX GEMM's epilogue.
    """
    x0 = tl.load(x0_ptr + off, mask=mask, other=0.0).to(ACC)
    xl = tl.load(xl_ptr + off, mask=mask, other=0.0, cache_modifier=".cg").to(ACC)
    h = tl.load(hl_ptr + off, mask=mask, other=0.0, cache_modifier=".cg").to(ACC)
    gx0 = g * x0
    if RELU:
        gh = tl.where(h > 0, gx0, 0.0)
        h = tl.maximum(h, 0.0)
    else:
        gh = gx0
    tl.store(ghl_ptr + off, gh.to(ghl_ptr.dtype.element_ty), mask=mask)
    part = g * (h + diag * xl)
    if not FIRST:
        part += tl.load(gx0_ptr + off, mask=mask, other=0.0, cache_modifier=".cg")
    tl.store(gx0_ptr + off, part, mask=mask)
    tl.store(carry_ptr + off, g + diag * gx0, mask=mask)


# ---------------------------------------------------------------- row-tile (all layers) kernels


@triton.jit
def cross_fwd_rowtile_kernel(
    x0_ptr, wu_ptr, v_ptr, bias_ptr, xs_ptr, hs_ptr, zs_ptr, out_ptr,
    M, N, R, diag, s_xl, s_zl, swu_l, swu_row, swu_col, sv_l, sv_row, sv_col,
    L: tl.constexpr, LOW_RANK: tl.constexpr, HAS_BIAS: tl.constexpr, RELU: tl.constexpr,
    SAVE_H: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """All L layers for BM rows: ``wu`` is W (L, N, N) or U (L, N, r), ``v`` is V (L, r, N).

    Writes x_1..x_{L-1} to ``xs`` (L-1, B, N), h_l to ``hs`` (L, B, N) when SAVE_H, z_l to
    ``zs`` (L, B, r) when LOW_RANK, and x_L to ``out``.
    """
    row0 = tl.program_id(0) * BM
    m_left = M - row0
    shift = row0.to(tl.int64) * N  # every (B, N) buffer now starts at this program's rows
    x0_ptr += shift
    xs_ptr += shift
    hs_ptr += shift
    out_ptr += shift
    zs_ptr += row0.to(tl.int64) * R
    rows = tl.arange(0, BM)
    for layer in tl.static_range(L):
        if layer == 0:
            xl_ptr = x0_ptr
        else:
            xl_ptr = xs_ptr + (layer - 1) * s_xl
        if layer == L - 1:
            dst_ptr = out_ptr
        else:
            dst_ptr = xs_ptr + layer * s_xl
        if LOW_RANK:
            zl_ptr = zs_ptr + layer * s_zl
            for r0 in tl.range(0, R, BN, disable_licm=True):
                rc = r0 + tl.arange(0, BN)
                # z_l = x_l @ V_l^T: mat[n, k] = V[n, k]
                z = _tile_matmul(xl_ptr, N, v_ptr + layer * sv_l, sv_row, sv_col, rows, rc, m_left,
                                 R, N, BM, BN, BK, ACC, PREC, UPCAST)  # (BM, BN)
                tl.store(zl_ptr + rows[:, None] * R + rc[None, :], z.to(zl_ptr.dtype.element_ty),
                         mask=(rows[:, None] < m_left) & (rc[None, :] < R))
            tl.debug_barrier()  # z_l complete (all r) before any thread reads it back
            src_ptr = zl_ptr
            src_stride = R
            k_dim = R
        else:
            src_ptr = xl_ptr
            src_stride = N
            k_dim = N
        for n0 in tl.range(0, N, BN, disable_licm=True):
            cols = n0 + tl.arange(0, BN)
            # h_l = src @ W_l^T (or U_l^T): mat[n, k] = W[n, k]
            acc = _tile_matmul(src_ptr, src_stride, wu_ptr + layer * swu_l, swu_row, swu_col, rows,
                               cols, m_left, N, k_dim, BM, BN, BK, ACC, PREC, UPCAST)  # (BM, BN)
            _fwd_epilogue(acc, rows, cols, m_left, N, x0_ptr, xl_ptr, bias_ptr + layer * N,
                          hs_ptr + layer * s_xl, dst_ptr, diag, HAS_BIAS, RELU, SAVE_H, ACC)
        tl.debug_barrier()  # x_{l+1} complete before layer l+1 reads it as its GEMM operand


@triton.jit
def cross_bwd_rowtile_kernel(
    gout_ptr, x0_ptr, wu_ptr, v_ptr, xs_ptr, hs_ptr, ghs_ptr, gzs_ptr, carry_ptr, gx0_ptr,
    M, N, R, diag, s_xl, s_zl, swu_l, swu_row, swu_col, sv_l, sv_row, sv_col,
    L: tl.constexpr, LOW_RANK: tl.constexpr, RELU: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """The dX chain of all L layers for BM rows: writes gh_l (and gz_l) for every layer, which
    the host turns into weight/bias gradients, and the complete dL/dx0 into ``gx0`` (ACC)."""
    row0 = tl.program_id(0) * BM
    m_left = M - row0
    shift = row0.to(tl.int64) * N  # every (B, N) buffer now starts at this program's rows
    gout_ptr += shift
    x0_ptr += shift
    xs_ptr += shift
    hs_ptr += shift
    ghs_ptr += shift
    carry_ptr += shift
    gx0_ptr += shift
    gzs_ptr += row0.to(tl.int64) * R
    rows = tl.arange(0, BM)
    if L == 1:
        xtop_ptr = x0_ptr
    else:
        xtop_ptr = xs_ptr + (L - 2) * s_xl
    for n0 in tl.range(0, N, BN, disable_licm=True):
        cols = n0 + tl.arange(0, BN)
        mask = (rows[:, None] < m_left) & (cols[None, :] < N)
        off = rows[:, None] * N + cols[None, :]  # (BM, BN)
        g = tl.load(gout_ptr + off, mask=mask, other=0.0).to(ACC)
        _bwd_elementwise(g, off, mask, x0_ptr, xtop_ptr, hs_ptr + (L - 1) * s_xl,
                         ghs_ptr + (L - 1) * s_xl, gx0_ptr, carry_ptr, diag, RELU, True, ACC)
    tl.debug_barrier()
    for i in tl.static_range(L):
        layer = L - 1 - i
        ghl_ptr = ghs_ptr + layer * s_xl
        if LOW_RANK:
            gzl_ptr = gzs_ptr + layer * s_zl
            for r0 in tl.range(0, R, BN, disable_licm=True):
                rc = r0 + tl.arange(0, BN)
                # gz_l = gh_l @ U_l: mat[n, k] = U[k, n]
                gz = _tile_matmul(ghl_ptr, N, wu_ptr + layer * swu_l, swu_col, swu_row, rows, rc,
                                  m_left, R, N, BM, BN, BK, ACC, PREC, UPCAST)  # (BM, BN)
                tl.store(gzl_ptr + rows[:, None] * R + rc[None, :],
                         gz.to(gzl_ptr.dtype.element_ty),
                         mask=(rows[:, None] < m_left) & (rc[None, :] < R))
            tl.debug_barrier()
            # dx = gz_l @ V_l: mat[n, k] = V[k, n]
            src_ptr = gzl_ptr
            src_stride = R
            k_dim = R
            mat_ptr = v_ptr + layer * sv_l
            mat_sn = sv_col
            mat_sk = sv_row
        else:
            # dx = gh_l @ W_l: mat[n, k] = W[k, n]
            src_ptr = ghl_ptr
            src_stride = N
            k_dim = N
            mat_ptr = wu_ptr + layer * swu_l
            mat_sn = swu_col
            mat_sk = swu_row
        if layer == 1:
            xp_ptr = x0_ptr
        else:
            xp_ptr = xs_ptr + (layer - 2) * s_xl
        for n0 in tl.range(0, N, BN, disable_licm=True):
            cols = n0 + tl.arange(0, BN)
            mask = (rows[:, None] < m_left) & (cols[None, :] < N)
            off = rows[:, None] * N + cols[None, :]  # (BM, BN)
            acc = _tile_matmul(src_ptr, src_stride, mat_ptr, mat_sn, mat_sk, rows, cols, m_left, N,
                               k_dim, BM, BN, BK, ACC, PREC, UPCAST)
            g = acc + tl.load(carry_ptr + off, mask=mask, other=0.0, cache_modifier=".cg")
            if layer > 0:
                _bwd_elementwise(g, off, mask, x0_ptr, xp_ptr, hs_ptr + (layer - 1) * s_xl,
                                 ghs_ptr + (layer - 1) * s_xl, gx0_ptr, carry_ptr, diag, RELU,
                                 False, ACC)
            else:
                g += tl.load(gx0_ptr + off, mask=mask, other=0.0, cache_modifier=".cg")
                tl.store(gx0_ptr + off, g, mask=mask)
        tl.debug_barrier()


# ---------------------------------------------------------------- per-layer kernels (large N)


@triton.jit
def cross_fwd_layer_kernel(
    src_ptr, src_stride, mat_ptr, mat_sn, mat_sk, bl_ptr, x0_ptr, xl_ptr, hl_ptr, dst_ptr,
    M, N, K, diag,
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, SAVE_H: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """One layer: dst = x0 * (act(src mat^T + b_l) + diag * x_l) + x_l; src = x_l or z_l and
    mat = W_l or U_l."""
    pid_m, pid_n = _grouped_pid(tl.program_id(0), tl.cdiv(M, BM), tl.cdiv(N, BN), GROUP_M)
    row0 = pid_m * BM
    shift = row0.to(tl.int64) * N
    rows = tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    acc = _tile_matmul(src_ptr + row0.to(tl.int64) * src_stride, src_stride, mat_ptr, mat_sn,
                       mat_sk, rows, cols, M - row0, N, K, BM, BN, BK, ACC, PREC, UPCAST)
    _fwd_epilogue(acc, rows, cols, M - row0, N, x0_ptr + shift, xl_ptr + shift, bl_ptr,
                  hl_ptr + shift, dst_ptr + shift, diag, HAS_BIAS, RELU, SAVE_H, ACC)


@triton.jit
def cross_bwd_top_kernel(
    gout_ptr, x0_ptr, xl_ptr, hl_ptr, ghl_ptr, gx0_ptr, carry_ptr, M, N, diag,
    RELU: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, ACC: tl.constexpr,
):
    """Backward through the last layer's elementwise part (g = grad of the stack's output)."""
    row0 = tl.program_id(0) * BM
    shift = row0.to(tl.int64) * N
    rows = tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    mask = (rows[:, None] < M - row0) & (cols[None, :] < N)
    off = rows[:, None] * N + cols[None, :]  # (BM, BN)
    g = tl.load(gout_ptr + shift + off, mask=mask, other=0.0).to(ACC)
    _bwd_elementwise(g, off, mask, x0_ptr + shift, xl_ptr + shift, hl_ptr + shift,
                     ghl_ptr + shift, gx0_ptr + shift, carry_ptr + shift, diag, RELU, True, ACC)


@triton.jit
def cross_bwd_layer_kernel(
    src_ptr, src_stride, mat_ptr, mat_sn, mat_sk, x0_ptr, xp_ptr, hp_ptr, ghp_ptr, gx0_ptr,
    carry_ptr,
    M, N, K, diag,
    HAS_PREV: tl.constexpr, RELU: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
    ACC: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):
    """dL/dx_l = src mat^T + carry (src = gh_l with mat[n, k] = W_l[k, n], or gz_l with
    mat[n, k] = V_l[k, n]), then straight into the elementwise backward of layer l-1
    (HAS_PREV) or into dL/dx0 (layer 0, where x_l is x0)."""
    pid_m, pid_n = _grouped_pid(tl.program_id(0), tl.cdiv(M, BM), tl.cdiv(N, BN), GROUP_M)
    row0 = pid_m * BM
    shift = row0.to(tl.int64) * N
    rows = tl.arange(0, BM)
    cols = pid_n * BN + tl.arange(0, BN)
    acc = _tile_matmul(src_ptr + row0.to(tl.int64) * src_stride, src_stride, mat_ptr, mat_sn,
                       mat_sk, rows, cols, M - row0, N, K, BM, BN, BK, ACC, PREC, UPCAST)
    mask = (rows[:, None] < M - row0) & (cols[None, :] < N)
    off = rows[:, None] * N + cols[None, :]  # (BM, BN)
    g = acc + tl.load(carry_ptr + shift + off, mask=mask, other=0.0)
    if HAS_PREV:
        _bwd_elementwise(g, off, mask, x0_ptr + shift, xp_ptr + shift, hp_ptr + shift,
                         ghp_ptr + shift, gx0_ptr + shift, carry_ptr + shift, diag, RELU, False,
                         ACC)
    else:
        g += tl.load(gx0_ptr + shift + off, mask=mask, other=0.0)
        tl.store(gx0_ptr + shift + off, g, mask=mask)
