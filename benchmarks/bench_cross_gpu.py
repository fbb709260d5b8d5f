"""Fused Triton cross stack vs the eager and torch.compile'd reference, forward + backward.

Checks the Triton result against a float64 reference first, then prints one markdown table:
median milliseconds (triton.testing.do_bench) of eager, torch.compile and Triton, the floor
max(FLOPs / peak, compulsory bytes / bandwidth) and the fraction of that floor each reaches.

Usage:
    python benchmarks/bench_cross_gpu.py                                  # H100 shapes, CUDA
    TRITON_INTERPRET=1 python benchmarks/bench_cross_gpu.py --interpret-smoke   # tiny, CPU

Floor model (fwd + bwd of L layers, B x N activations, element size s):
    FLOPs: full rank 6 B N^2 L (forward, dX and dW GEMMs); low rank 12 B N r L.
    bytes: s * (5 B N + 3 P): x0 read twice, output, its gradient and dL/dx0 once each, the P
    parameters read twice and their gradients written once; intermediates are not counted
    (the fused kernels save x_l and h_l, so they cannot reach this floor exactly).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# Peak rates the floor uses (H100 SXM, dense): override on the command line for other GPUs.
PEAKS = {"bandwidth_tbs": 3.0, "bf16_tflops": 780.0, "tf32_tflops": 390.0, "fp32_tflops": 67.0}
# Max relative error vs float64 (max |err| / max |ref|), as in tests/ops/test_triton_kernels.py;
# TF32 has fp16's 10-bit mantissa and gets fp16's entry.
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, "tf32": 5e-3, torch.float16: 5e-3,
       torch.bfloat16: 3e-2}


@dataclass(frozen=True)
class CrossCase:
    layers: int
    width: int
    rank: int | None
    batch: int
    dtype: torch.dtype

    @property
    def label(self) -> str:
        kind = "full" if self.rank is None else f"low r={self.rank}"
        return f"{kind} L={self.layers} N={self.width} B={self.batch}"


GPU_CASES = [
    CrossCase(3, 429, None, 65536, torch.float32),
    CrossCase(3, 429, None, 65536, torch.bfloat16),
    CrossCase(3, 3456, 512, 8192, torch.bfloat16),
    CrossCase(3, 3456, 512, 8192, torch.float32),
]
SMOKE_CASES = [
    CrossCase(3, 40, None, 48, torch.float32),
    CrossCase(2, 40, 16, 48, torch.bfloat16),
]


# ------------------------------------------------------------------ shared with bench_dot_gpu.py


def dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        name += " (TF32)"
    return name


def precision_key(dtype: torch.dtype) -> torch.dtype | str:
    tf32 = dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else dtype


def peak_flops(dtype: torch.dtype, peaks: dict[str, float]) -> float:
    if dtype in (torch.bfloat16, torch.float16):
        return peaks["bf16_tflops"] * 1e12
    key = "tf32_tflops" if precision_key(dtype) == "tf32" else "fp32_tflops"
    return peaks[key] * 1e12


def floor_ms(flops: float, nbytes: float, dtype: torch.dtype, peaks: dict[str, float]) -> float:
    return 1e3 * max(flops / peak_flops(dtype, peaks), nbytes / (peaks["bandwidth_tbs"] * 1e12))


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


def time_ms(fn: Callable[[], object], smoke: bool) -> float:
    """Median milliseconds of ``fn``: do_bench on the GPU, a few wall-clock runs in smoke mode."""
    if smoke:
        fn()
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            runs.append(1e3 * (time.perf_counter() - start))
        return statistics.median(runs)
    import triton.testing

    fn()  # compile / autotune outside the timed region
    return triton.testing.do_bench(fn, warmup=50, rep=500, return_mode="median")


def print_table(title: str, rows: list[list[str]]) -> None:
    head = ["case", "dtype", "eager ms", "compile ms", "triton ms", "floor ms",
            "% floor eager", "% floor compile", "% floor triton"]
    print(f"\n{title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def setup(argv: list[str] | None, script: str,
          description: str) -> tuple[argparse.Namespace, torch.device]:
    """Parse the common options and pick the device, or exit with a clear message."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--interpret-smoke", action="store_true",
                        help="tiny shapes on the CPU under TRITON_INTERPRET=1 (sanity only)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--activation", choices=["none", "relu"], default="none",
                        help="cross stack activation (relu gradients in half precision are not "
                             "comparable with float64: near-zero pre-activations flip)")
    parser.add_argument("--diag-scale", type=float, default=0.0, help="cross stack diag_scale")
    parser.add_argument("--tf32", choices=["on", "off"], default=None,
                        help="TF32 for float32 matmuls in all three implementations")
    for key, value in PEAKS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, default=value)
    args = parser.parse_args(argv)
    if args.interpret_smoke:
        # Before anything imports triton.jit'ed kernels: they become interpreter functions.
        os.environ["TRITON_INTERPRET"] = "1"
        return args, torch.device("cpu")
    if not torch.cuda.is_available():
        sys.exit(f"{script} needs a CUDA GPU and none is available. For a CPU sanity run use:\n"
                 f"    TRITON_INTERPRET=1 python benchmarks/{script} --interpret-smoke")
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET for GPU timings (or pass --interpret-smoke)")
    return args, torch.device("cuda")


def percent(floor: float, measured: float | None) -> str:
    return "-" if measured is None else f"{100 * floor / measured:.0f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------ the cross stack


def cross_inputs(case: CrossCase, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(seed)
    n, r, layers = case.width, case.rank, case.layers

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        t = torch.randn(*shape, generator=g) * scale
        return t.to(device=device, dtype=case.dtype).requires_grad_()

    ins = {"x0": rnd(case.batch, n)}
    if r is None:
        ins["weight"] = rnd(layers, n, n, scale=n**-0.5)
    else:
        ins["u"] = rnd(layers, n, r, scale=r**-0.5)
        ins["v"] = rnd(layers, r, n, scale=n**-0.5)
    ins["bias"] = rnd(layers, n, scale=0.1)
    return ins


def cross_cost(case: CrossCase) -> tuple[float, float]:
    b, n, layers = case.batch, case.width, case.layers
    if case.rank is None:
        flops, params = 6.0 * b * n * n * layers, layers * (n * n + n)
    else:
        flops, params = 12.0 * b * n * case.rank * layers, layers * (2 * n * case.rank + n)
    size = torch.empty((), dtype=case.dtype).element_size()
    return flops, size * (5.0 * b * n + 3.0 * params)


def run_case(case: CrossCase, args: argparse.Namespace, device: torch.device,
             peaks: dict[str, float]) -> list[str]:
    from crossrank.ops import dispatch
    from crossrank.ops.triton import cross_function

    smoke = args.interpret_smoke
    ins = cross_inputs(case, device)
    names = list(ins)
    activation = None if args.activation == "none" else args.activation
    diag_scale = args.diag_scale

    def stack(backend: str) -> Callable[..., torch.Tensor]:
        def f(**kw: torch.Tensor) -> torch.Tensor:
            return dispatch.cross_stack(**kw, diag_scale=diag_scale, activation=activation,
                                        backend=backend)  # type: ignore[arg-type]
        return f

    gout = torch.randn(case.batch, case.width, generator=torch.Generator().manual_seed(1))
    gout = gout.to(device=device, dtype=case.dtype)

    def step(f: Callable[..., torch.Tensor]) -> Callable[[], object]:
        return lambda: torch.autograd.grad(f(**ins), [ins[k] for k in names], gout)

    # Correctness first: Triton and eager (same dtype) against float64.
    ref_ins = {k: t.detach().double().requires_grad_() for k, t in ins.items()}
    ref_out = stack("reference")(**ref_ins)
    ref = [ref_out, *torch.autograd.grad(ref_out, [ref_ins[k] for k in names], gout.double())]
    out = stack("triton")(**ins)
    got = [out, *torch.autograd.grad(out, [ins[k] for k in names], gout)]
    tol = TOL[precision_key(case.dtype)]
    errors = {name: rel_err(a, b) for name, a, b in zip(["out", *names], got, ref, strict=True)}
    grads_checked = not (activation == "relu" and case.dtype in (torch.bfloat16, torch.float16))
    if not grads_checked:  # relu's derivative flips on rounding: compare the forward only
        errors = {"out": errors["out"]}
    worst = max(errors, key=errors.__getitem__)
    if errors[worst] >= tol:
        sys.exit(f"{case.label} {dtype_name(case.dtype)}: Triton {worst} relative error "
                 f"{errors[worst]:.3g} >= {tol:g}; not timing a wrong kernel")
    del ref_ins, ref_out, ref, out, got

    eager = time_ms(step(stack("reference")), smoke)
    compiled = None
    if not (smoke or args.no_compile):
        compiled = time_ms(step(torch.compile(stack("reference"))), smoke)
    fused = time_ms(step(stack("triton")), smoke)
    flops, nbytes = cross_cost(case)
    floor = floor_ms(flops, nbytes, case.dtype, peaks)
    path = cross_function.choose_path(case.batch, case.width, case.rank or case.width,
                                      cross_function.sm_count(device))
    checked = "max err" if grads_checked else "fwd-only err"
    label = f"{case.label} [{path}, {checked} {errors[worst]:.1e}]"
    if smoke:
        return [label, dtype_name(case.dtype), ms(eager), ms(compiled), ms(fused), "-", "-", "-",
                "-"]
    return [label, dtype_name(case.dtype), ms(eager), ms(compiled), ms(fused), ms(floor),
            percent(floor, eager), percent(floor, compiled), percent(floor, fused)]


def main(argv: list[str] | None = None) -> None:
    args, device = setup(argv, "bench_cross_gpu.py", __doc__.splitlines()[0])
    peaks = {k: getattr(args, k) for k in PEAKS}
    cases = SMOKE_CASES if args.interpret_smoke else GPU_CASES
    rows = []
    for case in cases:
        # The float32 cases run with TF32 ("fp32/TF32") unless --tf32 off.
        tf32 = {"on": True, "off": False}.get(args.tf32 or "", True)
        torch.backends.cuda.matmul.allow_tf32 = tf32 and device.type == "cuda"
        rows.append(run_case(case, args, device, peaks))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    where = ("CPU, Triton interpreter: timings meaningless" if args.interpret_smoke
             else torch.cuda.get_device_name(device))
    print_table(f"Cross stack (activation {args.activation}, diag_scale {args.diag_scale}, bias), "
                f"forward + backward, median ({where})", rows)


if __name__ == "__main__":
    main()
