"""Launchers and the autograd.Function of the fused cross stack (imports Triton).

``wu`` is the stacked full-rank weight W (L, N, N) or U (L, N, r); ``v`` is V (L, r, N) or None
(the kernels' names, see cross_kernels).
Two paths (see cross_kernels): "rowtile" runs all layers in one kernel per direction and is
taken for N, r <= ROWTILE_MAX_WIDTH with enough row tiles to fill the GPU; "layerwise" runs a
GEMM per layer with the elementwise work fused into its epilogue. Plain GEMMs that need no
epilogue (low rank z = x V^T and gz = gh U; every weight gradient) go to torch.matmul.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch
import triton
from torch import Tensor
from torch.autograd.function import once_differentiable

from crossrank.ops.triton import _runtime
from crossrank.ops.triton import cross_kernels as kern
from crossrank.ops.triton.common_kernels import tl_acc_dtype

Path = Literal["auto", "rowtile", "layerwise"]
PATHS = ("auto", "rowtile", "layerwise")
ROWTILE_MAX_WIDTH = 1024


@dataclass(frozen=True)
class TileConfig:
    bm: int
    bn: int
    bk: int
    num_warps: int
    num_stages: int
    group_m: int = 8


@functools.cache
def _num_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (1 for anything else)."""
    if device.type != "cuda":
        return 1
    return _num_sms(device.index if device.index is not None else torch.cuda.current_device())


def tile_config(kernel: str, dtype: torch.dtype, batch: int, sms: int) -> TileConfig:
    """Fixed tiles per kernel: one small config under the interpreter; on the GPU, untuned
    H100-minded ones checked to compile for sm_90 without register spills (the backward
    epilogues keep ~6 tiles live, hence their narrower BN)."""
    if _runtime.interpreting():
        return TileConfig(16, 16, 16, 4, 1, 2)
    bk = 32 if dtype == torch.float32 else 64  # 128-byte K slices for both widths
    if kernel == "fwd_rowtile":
        if dtype != torch.float32 and triton.cdiv(batch, 128) >= sms:
            return TileConfig(128, 64, bk, 8, 3)
        return TileConfig(64, 64, bk, 4, 3)
    if kernel == "bwd_rowtile":
        return TileConfig(64, 64, bk, 8, 3)
    if kernel == "fwd_layer":
        return TileConfig(128, 64, bk, 8, 3)
    if kernel == "bwd_layer":
        return TileConfig(128, 32, bk, 8, 3)
    if kernel == "bwd_top":  # elementwise
        return TileConfig(32, 128, bk, 4, 1)
    raise ValueError(f"unknown kernel {kernel!r}")


def choose_path(batch: int, width: int, rank: int, sms: int) -> str:
    """Row-tile when every GEMM is narrow enough for one program to loop over all layers and the
    row tiles fill the GPU."""
    if max(width, rank) > ROWTILE_MAX_WIDTH:
        return "layerwise"
    if _runtime.interpreting() or triton.cdiv(batch, 64) >= sms:
        return "rowtile"
    return "layerwise"


def _tiles(cfg: TileConfig, x0: Tensor) -> dict[str, Any]:
    """Launch meta-parameters shared by the GEMM kernels."""
    return {
        "BM": cfg.bm, "BN": cfg.bn, "BK": cfg.bk, "num_warps": cfg.num_warps,
        "num_stages": cfg.num_stages, "ACC": tl_acc_dtype(x0.dtype),
        "PREC": _runtime.dot_precision(x0.dtype), "UPCAST": _runtime.upcast_dot_operands(x0.dtype),
    }


def _forward(x0: Tensor, wu: Tensor, v: Tensor | None, bias: Tensor | None, diag: float,
             relu: bool, path: str, save: bool) -> tuple[Tensor, Tensor, Tensor | None,
                                                          Tensor | None]:
    """Returns out (B, N) and the saved xs (L-1, B, N), hs (L, B, N) or None, zs (L, B, r)."""
    m, n = x0.shape
    num_layers, low = wu.shape[0], v is not None
    r = v.shape[1] if v is not None else n
    opts: dict[str, Any] = {"dtype": x0.dtype, "device": x0.device}
    out = _runtime.empty((m, n), **opts)
    xs = _runtime.empty((num_layers - 1, m, n), **opts)
    hs = _runtime.empty((num_layers, m, n), **opts) if save else None
    zs = _runtime.empty((num_layers, m, r), **opts) if low else None
    cfg = tile_config("fwd_rowtile" if path == "rowtile" else "fwd_layer", x0.dtype, m, sm_count(x0.device))
    tiles = _tiles(cfg, x0)
    flags = {"HAS_BIAS": bias is not None, "RELU": relu, "SAVE_H": save}
    # Placeholders (x0, out, wu) stand for pointers a kernel never reads under its constexpr flags.
    if path == "rowtile":
        v_arg = v if v is not None else wu  # full rank: a placeholder, never read
        kern.cross_fwd_rowtile_kernel[(triton.cdiv(m, cfg.bm),)](
            x0, wu, v_arg, bias if bias is not None else x0, xs if num_layers > 1 else out,
            hs if hs is not None else out, zs if zs is not None else out, out,
            m, n, r, diag, m * n, m * r,
            *wu.stride(), *v_arg.stride(), L=num_layers, LOW_RANK=low, **flags, **tiles)
        return out, xs, hs, zs
    grid = (triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn),)
    for layer in range(num_layers):
        xl = x0 if layer == 0 else xs[layer - 1]  # (B, N)
        dst = out if layer == num_layers - 1 else xs[layer]
        src = xl
        if zs is not None:
            src = torch.matmul(xl, v[layer].T, out=zs[layer])  # type: ignore[index]  # (B, r)
        kern.cross_fwd_layer_kernel[grid](
            src, src.stride(0), wu[layer], wu.stride(1), wu.stride(2),
            bias[layer] if bias is not None else x0, x0, xl, hs[layer] if hs is not None else out, dst,
            m, n, src.shape[1], diag, GROUP_M=cfg.group_m, **flags, **tiles)
    return out, xs, hs, zs


def _backward(gout: Tensor, x0: Tensor, wu: Tensor, v: Tensor | None, xs: Tensor, hs: Tensor,
              zs: Tensor | None, diag: float, relu: bool, path: str) -> tuple[Tensor, Tensor,
                                                                               Tensor | None]:
    """Returns dL/dx0 (ACC dtype), gh (L, B, N) and gz (L, B, r) or None."""
    m, n = x0.shape
    num_layers, low = wu.shape[0], v is not None
    r = v.shape[1] if v is not None else n
    opts: dict[str, Any] = {"dtype": x0.dtype, "device": x0.device}
    acc_opts: dict[str, Any] = {"dtype": _runtime.acc_dtype(x0.dtype), "device": x0.device}
    gh = _runtime.empty((num_layers, m, n), **opts)
    gz = _runtime.empty((num_layers, m, r), **opts) if low else None
    carry = _runtime.empty((m, n), **acc_opts)
    gx0 = _runtime.empty((m, n), **acc_opts)
    cfg = tile_config("bwd_rowtile" if path == "rowtile" else "bwd_layer", x0.dtype, m, sm_count(x0.device))
    tiles = _tiles(cfg, x0)
    if path == "rowtile":
        v_arg = v if v is not None else wu  # full rank: a placeholder, never read
        kern.cross_bwd_rowtile_kernel[(triton.cdiv(m, cfg.bm),)](
            gout, x0, wu, v_arg, xs if num_layers > 1 else gout, hs, gh,
            gz if gz is not None else gh, carry, gx0, m, n, r, diag, m * n, m * r,
            *wu.stride(), *v_arg.stride(), L=num_layers, LOW_RANK=low, RELU=relu, **tiles)
        return gx0, gh, gz
    xls = [x0, *xs]  # x_l for l = 0..L-1, each (B, N)
    top = num_layers - 1
    ew = tile_config("bwd_top", x0.dtype, m, sm_count(x0.device))
    kern.cross_bwd_top_kernel[(triton.cdiv(m, ew.bm), triton.cdiv(n, ew.bn))](
        gout, x0, xls[top], hs[top], gh[top], gx0, carry, m, n, diag,
        RELU=relu, BM=ew.bm, BN=ew.bn, ACC=tiles["ACC"], num_warps=ew.num_warps)
    grid = (triton.cdiv(m, cfg.bm) * triton.cdiv(n, cfg.bn),)
    for layer in reversed(range(num_layers)):
        if v is not None and gz is not None:
            src = torch.matmul(gh[layer], wu[layer], out=gz[layer])  # (B, N) @ (N, r)
            mat, mat_sn, mat_sk = v[layer], v.stride(2), v.stride(1)  # mat[n, k] = V[k, n]
        else:
            src = gh[layer]
            mat, mat_sn, mat_sk = wu[layer], wu.stride(2), wu.stride(1)  # mat[n, k] = W[k, n]
        prev = max(layer - 1, 0)
        kern.cross_bwd_layer_kernel[grid](
            src, src.stride(0), mat, mat_sn, mat_sk, x0, xls[prev], hs[prev], gh[prev], gx0, carry,
            m, n, src.shape[1], diag, HAS_PREV=layer > 0, RELU=relu, GROUP_M=cfg.group_m,
            **tiles)
    return gx0, gh, gz


class CrossStackFunction(torch.autograd.Function):
    """Fused L-layer cross stack with its own backward; see the module docstring."""

    @staticmethod
    def forward(ctx: Any, x0: Tensor, wu: Tensor, v: Tensor | None, bias: Tensor | None,
                diag: float, relu: bool, path: str, save: bool) -> Tensor:
        x0, wu = x0.contiguous(), wu.contiguous()
        v = v.contiguous() if v is not None else None
        bias = bias.contiguous() if bias is not None else None
        ctx.diag, ctx.relu, ctx.path = diag, relu, path
        if x0.shape[0] == 0:
            ctx.save_for_backward(x0, wu, v, bias, None, None, None)
            return x0.clone()
        out, xs, hs, zs = _forward(x0, wu, v, bias, diag, relu, path, save)
        ctx.save_for_backward(x0, wu, v, bias, xs, hs, zs)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gout: Tensor) -> tuple[Tensor | None, ...]:
        x0, wu, v, bias, xs, hs, zs = ctx.saved_tensors
        if x0.shape[0] == 0:
            zero = [None if t is None else torch.zeros_like(t) for t in (wu, v, bias)]
            return (gout.clone(), *zero, None, None, None, None)
        gout = gout.to(x0.dtype).contiguous()
        gx0, gh, gz = _backward(gout, x0, wu, v, xs, hs, zs, ctx.diag, ctx.relu, ctx.path)
        xls = [x0, *xs]  # x_l, each (B, N)
        need = ctx.needs_input_grad
        gwu = gv = gbias = None
        if need[1]:
            if v is None:
                gwu = torch.stack([gh[i].T @ xls[i] for i in range(len(xls))])  # (L, N, N)
            else:
                assert zs is not None  # the low-rank forward saves z = V x
                gwu = torch.stack([gh[i].T @ zs[i] for i in range(len(xls))])  # (L, N, r)
        if v is not None and need[2]:
            assert gz is not None  # computed whenever v is given
            gv = torch.stack([gz[i].T @ xls[i] for i in range(len(xls))])  # (L, r, N)
        if bias is not None and need[3]:
            gbias = gh.sum(dim=1, dtype=gx0.dtype).to(bias.dtype)  # (L, N)
        gx = gx0.to(x0.dtype) if need[0] else None
        return gx, gwu, gv, gbias, None, None, None, None


def cross_stack(x0: Tensor, wu: Tensor, v: Tensor | None, bias: Tensor | None, *,
                diag_scale: float, relu: bool, path: Path = "auto") -> Tensor:
    """Run the fused stack; inputs already validated (see ``crossrank.ops.triton``).

    Shape:
        x0: (B, N); wu: W (L, N, N) or U (L, N, r); v: None or V (L, r, N); bias: (L, N) or None.
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "auto":
        r = v.shape[1] if v is not None else x0.shape[1]
        path = choose_path(x0.shape[0], x0.shape[1], r, sm_count(x0.device))  # type: ignore[assignment]
    tensors = (x0, wu, v, bias)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return CrossStackFunction.apply(x0, wu, v, bias, float(diag_scale), relu, path, save)
