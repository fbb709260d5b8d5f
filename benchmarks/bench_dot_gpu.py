"""Fused Triton dot interaction vs the eager and torch.compile'd reference, forward + backward.

Checks the Triton result against a float64 reference first, then prints one markdown table
(same columns and timing as bench_cross_gpu.py, whose helpers it uses).

Usage:
    python benchmarks/bench_dot_gpu.py [--tf32 on]                        # Criteo shapes, CUDA
    TRITON_INTERPRET=1 python benchmarks/bench_dot_gpu.py --interpret-smoke     # tiny, CPU

Floor model (fwd + bwd, T = (F+1) x D per sample, P pairs, element size s):
    FLOPs: 6 B P D (2 B P D for the pairs, 4 B P D for (G + G^T) T; padding not counted).
    bytes: s * (3 B (F+1) D + 2 B (D + P)): T read by both passes, dL/dT written, the output
    written and its gradient read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cross_gpu import (  # noqa: E402
    PEAKS,
    TOL,
    dtype_name,
    floor_ms,
    ms,
    percent,
    precision_key,
    print_table,
    rel_err,
    setup,
    time_ms,
)


@dataclass(frozen=True)
class DotCase:
    batch: int
    fields: int
    dim: int
    dtype: torch.dtype
    self_interaction: bool = False

    @property
    def label(self) -> str:
        extra = " self" if self.self_interaction else ""
        return f"B={self.batch} F={self.fields} D={self.dim}{extra}"


GPU_CASES = [DotCase(8192, 26, 128, torch.float32), DotCase(65536, 26, 16, torch.float32)]
SMOKE_CASES = [DotCase(9, 5, 20, torch.float32), DotCase(6, 3, 16, torch.bfloat16, True)]


def dot_cost(case: DotCase) -> tuple[float, float]:
    from crossrank.ops.reference import num_dot_interactions

    b, f, d = case.batch, case.fields, case.dim
    pairs = num_dot_interactions(f + 1, case.self_interaction)
    size = torch.empty((), dtype=case.dtype).element_size()
    return 6.0 * b * pairs * d, size * (3.0 * b * (f + 1) * d + 2.0 * b * (d + pairs))


def run_case(case: DotCase, args: argparse.Namespace, device: torch.device,
             peaks: dict[str, float]) -> list[str]:
    from crossrank.ops import dispatch

    smoke = args.interpret_smoke
    g = torch.Generator(device="cpu").manual_seed(0)
    dense = torch.randn(case.batch, case.dim, generator=g).to(device, case.dtype)
    sparse = torch.randn(case.batch, case.fields, case.dim, generator=g).to(device, case.dtype)
    dense.requires_grad_()
    sparse.requires_grad_()

    def op(backend: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def f(d: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return dispatch.dot_interaction(d, s, self_interaction=case.self_interaction,
                                            backend=backend)  # type: ignore[arg-type]
        return f

    out = op("triton")(dense, sparse)
    gout = torch.randn(out.shape, generator=g).to(device, case.dtype)

    def step(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        return lambda: torch.autograd.grad(f(dense, sparse), (dense, sparse), gout)

    rd, rs = (t.detach().double().requires_grad_() for t in (dense, sparse))
    ref_out = op("reference")(rd, rs)
    ref = [ref_out, *torch.autograd.grad(ref_out, (rd, rs), gout.double())]
    got = [out, *torch.autograd.grad(out, (dense, sparse), gout)]
    tol = TOL[precision_key(case.dtype)]
    errors = {n: rel_err(a, b) for n, a, b in zip(["out", "dense", "sparse"], got, ref,
                                                  strict=True)}
    worst = max(errors, key=errors.__getitem__)
    if errors[worst] >= tol:
        sys.exit(f"{case.label} {dtype_name(case.dtype)}: Triton {worst} relative error "
                 f"{errors[worst]:.3g} >= {tol:g}; not timing a wrong kernel")
    del rd, rs, ref_out, ref, out, got

    eager = time_ms(step(op("reference")), smoke)
    compiled = None
    if not (smoke or args.no_compile):
        compiled = time_ms(step(torch.compile(op("reference"))), smoke)
    fused = time_ms(step(op("triton")), smoke)
    flops, nbytes = dot_cost(case)
    floor = floor_ms(flops, nbytes, case.dtype, peaks)
    label = f"{case.label} [max err {errors[worst]:.1e}]"
    if smoke:
        return [label, dtype_name(case.dtype), ms(eager), ms(compiled), ms(fused), "-", "-", "-",
                "-"]
    return [label, dtype_name(case.dtype), ms(eager), ms(compiled), ms(fused), ms(floor),
            percent(floor, eager), percent(floor, compiled), percent(floor, fused)]


def main(argv: list[str] | None = None) -> None:
    args, device = setup(argv, "bench_dot_gpu.py", __doc__.splitlines()[0])
    peaks = {k: getattr(args, k) for k in PEAKS}
    # float32 as torch runs it by default (no TF32) unless --tf32 on.
    torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on" and device.type == "cuda"
    rows = [run_case(case, args, device, peaks)
            for case in (SMOKE_CASES if args.interpret_smoke else GPU_CASES)]
    where = ("CPU, Triton interpreter: timings meaningless" if args.interpret_smoke
             else torch.cuda.get_device_name(device))
    print_table(f"Dot interaction, forward + backward, median ({where})", rows)


if __name__ == "__main__":
    main()
