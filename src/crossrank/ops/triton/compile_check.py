"""Compile every kernel variant the launchers use for a CUDA target, without a GPU.

The interpreter checks the kernels' mathematics but not that they compile for a GPU, nor their
register and shared-memory budgets. This module runs Triton's real compiler (TTIR -> PTX ->
cubin with the bundled ptxas) for an sm_XX target and reports shared memory, registers and
stack (spills) per kernel. Run it with the interpreter off::

    TRITON_INTERPRET=0 python -m crossrank.ops.triton.compile_check [--arch 90] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from crossrank.ops.triton import cross_function, dot_function
from crossrank.ops.triton import cross_kernels as ck
from crossrank.ops.triton import dot_kernels as dk

_TL = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
H100_SMS = 132  # tile choices as on an H100 SXM; no device is queried


@dataclass(frozen=True)
class Compiled:
    name: str
    shared_bytes: int
    resources: str  # cuobjdump's "REG:.. STACK:.." line, or "" when cuobjdump is missing


def _signature(fn: Any, consts: dict[str, Any], dtype: str) -> dict[str, str]:
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name in ("carry_ptr", "gx0_ptr"):  # float32 gradient accumulators
            sig[name] = "*fp32"
        elif name.endswith("_ptr"):
            sig[name] = f"*{dtype}"
        else:
            sig[name] = "fp32" if name == "diag" else "i32"
    return sig


def _resources(cubin: bytes) -> str:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return ""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                             text=True, check=False).stdout
    lines = [line.strip() for line in out.splitlines() if "REG:" in line]
    return " ".join(lines[0].split()[:2]) if lines else ""


def _variants(quick: bool) -> Iterator[tuple[str, Any, dict[str, Any], str, dict[str, int]]]:
    """(name, kernel, constexprs, element type, launch options) as the launchers pick them."""
    dtypes = [torch.bfloat16, torch.float32] if quick else [torch.bfloat16, torch.float32,
                                                            torch.float16]
    for dtype in dtypes:
        t = _TL[dtype]
        prec = "tf32" if dtype == torch.float32 else "ieee"
        common = {"ACC": tl.float32, "PREC": prec, "UPCAST": False}
        for kernel, fn in (("fwd_rowtile", ck.cross_fwd_rowtile_kernel),
                           ("bwd_rowtile", ck.cross_bwd_rowtile_kernel),
                           ("fwd_layer", ck.cross_fwd_layer_kernel),
                           ("bwd_layer", ck.cross_bwd_layer_kernel)):
            cfg = cross_function.tile_config(kernel, dtype, 65536, H100_SMS)
            opts = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
            tiles = {"BM": cfg.bm, "BN": cfg.bn, "BK": cfg.bk, **common}
            for low in ([False] if quick or "layer" in kernel else [False, True]):
                if kernel == "fwd_rowtile":
                    c = {"L": 3, "LOW_RANK": low, "HAS_BIAS": True, "RELU": True, "SAVE_H": True}
                elif kernel == "bwd_rowtile":
                    c = {"L": 3, "LOW_RANK": low, "RELU": True}
                elif kernel == "fwd_layer":
                    c = {"HAS_BIAS": True, "RELU": True, "SAVE_H": True, "GROUP_M": cfg.group_m}
                else:
                    c = {"HAS_PREV": True, "RELU": True, "GROUP_M": cfg.group_m}
                yield f"{kernel} {t} low={low}", fn, {**c, **tiles}, t, opts
        for f, d in ((26, 128), (26, 16)):
            cfg_d = dot_function._config(f + 1, d)
            opts = {"num_warps": cfg_d.pop("num_warps"), "num_stages": cfg_d.pop("num_stages")}
            c = {"SELF": False, **cfg_d, **common}
            yield f"dot_fwd {t} F={f} D={d}", dk.dot_fwd_kernel, c, t, opts
            yield f"dot_bwd {t} F={f} D={d}", dk.dot_bwd_kernel, c, t, opts
            if quick:
                break


def compile_all(arch: int = 90, *, quick: bool = False) -> list[Compiled]:
    """Compile the launchers' kernel variants for ``sm_{arch}``; raises if any fails."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset (the kernels are "
                           "interpreter objects otherwise)")
    target = GPUTarget("cuda", arch, 32)
    out = []
    for name, fn, consts, dtype, opts in _variants(quick):
        src = ASTSource(fn, _signature(fn, consts, dtype), constexprs=consts)
        kernel = triton.compile(src, target=target, options=opts)
        out.append(Compiled(name, kernel.metadata.shared, _resources(kernel.asm["cubin"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10")
    parser.add_argument("--quick", action="store_true", help="a representative subset")
    args = parser.parse_args()
    print(f"{'kernel':32s} {'shared':>8s}  resources (sm_{args.arch})")
    for c in compile_all(args.arch, quick=args.quick):
        print(f"{c.name:32s} {c.shared_bytes:8d}  {c.resources}")


if __name__ == "__main__":
    main()
