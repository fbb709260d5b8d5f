"""CPU training speed of DLRM-DCN, crossrank beside its peers measured in the same run.

The shape (``crossrank.train.throughput``): DLRM with a 3-layer low-rank (r=64) cross
interaction, D=16, 26 tables of 100,000 rows, bottom MLP 512-256-16, top 512-256-1, batch
2,048, Criteo-shaped random batches, Adagrad (lr 0.01) as in the peers' scripts. Every figure
printed is measured by this run, each contender in a fresh process, the contenders alternating
round after round (so a slow minute of the machine hits all of them):

    crossrank float32          the Trainer's own step (TrainStep), sparse embedding gradients
    crossrank bf16             the same with --precision bf16 (bfloat16 products)
    torchrec fused             TorchRec 1.9.2 DLRM_DCN, FBGEMM's fused embedding optimizer
    torchrec unfused           TorchRec DLRM_DCN on EmbeddingBagCollection + torch Adagrad
    deepctr                    DeepCTR-Torch 0.3.0 DCN (matrix cross), model.fit

The peers run from the environments ``../shared/peers/setup.sh`` builds (``$PEERS``, default
``peers/`` beside the repository); a peer whose environment is missing is listed as not
measured, never given a number. The matmul ceiling is measured too: a 2048x512x512 float32
product's rate divided by the model's 3.97 MFLOP per sample (forward + backward).

``--busy`` adds the thread-choice table: crossrank's default thread choice (the governor,
``crossrank.train.threads``, its probes included) against 2 threads on the idle machine, then
against 1 and 2 threads while a competing CPU-bound process (started and stopped by this
script, bounded in time) runs; ``--busy-steps`` steps a run, ``--busy-rounds`` alternating
rounds, medians and ratios printed.

Run: .venv/bin/python benchmarks/bench_train_cpu.py [--rounds 3] [--steps 30] [--busy]
     [--busy-steps 200] [--busy-rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("PEERS", ROOT.parent / "peers"))
PEER_SCRIPTS = ROOT.parent / "shared" / "peers"
RATE = re.compile(r"samples/s=([0-9.]+)")


def child(kind: str, *, threads: str, precision: str, steps: int, batch: int) -> None:
    """In a fresh process: one crossrank measurement or the matmul rate, printed as
    ``samples/s=`` (or ``gflops=``)."""
    import torch

    if threads != "auto":
        torch.set_num_threads(int(threads))
    if kind in ("matmul", "matmul-bf16"):
        from crossrank.train.throughput import matmul_gflops

        dtype = torch.bfloat16 if kind == "matmul-bf16" else torch.float32
        print(f"gflops={matmul_gflops(batch, dtype=dtype):.1f}")
        return
    from crossrank.train.config import TrainConfig
    from crossrank.train.throughput import make_model, measure, synthetic_batches

    torch.manual_seed(0)
    config = TrainConfig(optimizer="adagrad", lr=0.01, batch_size=batch, precision=precision,
                         threads=None if threads == "auto" else int(threads))
    rate = measure(make_model(True), synthetic_batches(batch), config=config, steps=steps,
                   warmup=3)
    print(f"samples/s={rate:.0f}")


def run(cmd: list[str], timeout: float = 600) -> float | None:
    """The figure a measuring process printed, or None when it failed (its error shown)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  (timed out: {' '.join(cmd[-4:])})", file=sys.stderr)
        return None
    found = re.search(r"(?:samples/s|gflops)=([0-9.]+)", out.stdout)
    if out.returncode != 0 or not found:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  (failed: {' '.join(cmd[-4:])}: {tail})", file=sys.stderr)
        return None
    return float(found.group(1))


def me(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def contenders(steps: int, batch: int) -> dict[str, list[str] | None]:
    torchrec = PEERS / "venv214" / "bin" / "python"
    deepctr = PEERS / "venv" / "bin" / "python"
    tr_script = str(PEER_SCRIPTS / "peer_torchrec_dlrm_dcn.py")
    dc_script = str(PEER_SCRIPTS / "peer_deepctr_dcn.py")
    common = ["--steps", str(steps), "--batch", str(batch), "--threads", "2"]
    return {
        "crossrank float32": me("crossrank", *common),
        "crossrank bf16": me("crossrank", *common, "--precision", "bf16"),
        "torchrec fused": [str(torchrec), tr_script, str(batch), str(steps), "fused"]
        if torchrec.exists() else None,
        "torchrec unfused": [str(torchrec), tr_script, str(batch), str(steps)]
        if torchrec.exists() else None,
        "deepctr": [str(deepctr), dc_script, str(batch * steps), str(batch)]
        if deepctr.exists() else None,
    }


def cpu_flags() -> str:
    try:
        flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(),
                              re.M).group(1).split())  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def cpu_model() -> str:
    found = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    return found.group(1).strip() if found else "unknown CPU"


def same_run_table(rounds: int, steps: int, batch: int) -> None:
    import torch

    who = contenders(steps, batch)
    figures: dict[str, list[float]] = {name: [] for name in who}
    for r in range(rounds):
        names = list(who)
        names = names[r % len(names):] + names[:r % len(names)]  # rotate the order
        for name in names:
            cmd = who[name]
            if cmd is not None and (value := run(cmd)) is not None:
                figures[name].append(value)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    gflops = run(me("matmul", "--threads", "2", "--batch", str(batch)))
    bf16_gflops = run(me("matmul-bf16", "--threads", "2", "--batch", str(batch)))
    flop_per_sample = 3.97e6
    ceiling = gflops * 1e9 / flop_per_sample if gflops else None
    bf16_ceiling = bf16_gflops * 1e9 / flop_per_sample if bf16_gflops else None
    print(f"\nDLRM-DCN training, batch {batch}, 2 threads, {steps} timed steps, {rounds} "
          f"alternating rounds, {time.strftime('%Y-%m-%d')}, {cpu_model()} ({os.cpu_count()} "
          f"CPUs; flags: {cpu_flags()}), torch {torch.__version__} for crossrank")
    if gflops:
        print(f"{batch}x512x512 float32 product: {gflops:.0f} GFLOP/s -> ceiling "
              f"{ceiling:,.0f} samples/s at 3.97 MFLOP/sample")
    if bf16_gflops:  # the bf16 row's own ceiling: its products run at this rate
        print(f"{batch}x512x512 bfloat16 product: {bf16_gflops:.0f} GFLOP/s -> ceiling "
              f"{bf16_ceiling:,.0f} samples/s")
    fused = statistics.median(figures["torchrec fused"]) if figures["torchrec fused"] else None
    print(f"\n{'contender':<20} {'samples/s (each round)':<30} {'median':>9} {'vs torchrec fused':>18}"
          f" {'of ceiling':>11}")
    for name, values in figures.items():
        if who[name] is None:
            print(f"{name:<20} not measured: environment missing (../shared/peers/setup.sh)")
            continue
        if not values:
            print(f"{name:<20} failed (see above)")
            continue
        med = statistics.median(values)
        each = " / ".join(f"{v:,.0f}" for v in values)
        ratio = f"{med / fused:.2f}x" if fused else "-"
        share = f"{med / ceiling:.0%}" if ceiling else "-"
        if name == "crossrank bf16" and bf16_ceiling:
            share += f" ({med / bf16_ceiling:.0%} of bf16's)"
        print(f"{name:<20} {each:<30} {med:>9,.0f} {ratio:>18} {share:>11}")


def thread_choice_table(steps: int, batch: int, rounds: int) -> None:
    """The default thread choice (the governor) against fixed counts, alternating round by
    round: idle (against 2 threads) and with one competing CPU-bound process started and
    stopped here (against 1 and 2 threads)."""
    def measure_all(cases: tuple[str, ...]) -> dict[str, list[float]]:
        got: dict[str, list[float]] = {t: [] for t in cases}
        for r in range(rounds):
            for threads in cases[r % len(cases):] + cases[:r % len(cases)]:
                value = run(me("crossrank", "--steps", str(steps), "--batch", str(batch),
                               "--threads", threads))
                if value is not None:
                    got[threads].append(value)
        return got

    idle = measure_all(("auto", "2"))
    burner = subprocess.Popen([sys.executable, "-c",
                               "import time\nend = time.time() + 1800\n"
                               "while time.time() < end:\n    pass\n"])
    try:
        time.sleep(0.5)
        busy = measure_all(("auto", "1", "2"))
    finally:
        burner.kill()
        burner.wait()
    print(f"\nthread choice ({steps} steps a run after 3 untimed ones, the choice's probes "
          f"included; {rounds} alternating rounds):")
    for title, got, base in (("idle", idle, "2"), ("one competing CPU-bound process", busy, "1")):
        print(f"  {title}:")
        for threads, values in got.items():
            label = "default (measured choice)" if threads == "auto" else f"--threads {threads}"
            if not values:
                print(f"    {label:<28} failed")
                continue
            med = statistics.median(values)
            each = " / ".join(f"{v:,.0f}" for v in values)
            ratio = (f"  {med / statistics.median(got[base]):.2f}x --threads {base}"
                     if threads == "auto" and got[base] else "")
            print(f"    {label:<28} {each:<30} median {med:>7,.0f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--busy", action="store_true", help="add the busy-machine case")
    parser.add_argument("--busy-steps", type=int, default=200)
    parser.add_argument("--busy-rounds", type=int, default=3)
    parser.add_argument("--child", nargs="?", const="", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="2", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, threads=args.threads, precision=args.precision, steps=args.steps,
              batch=args.batch)
        return
    same_run_table(args.rounds, args.steps, args.batch)
    if args.busy:
        thread_choice_table(args.busy_steps, args.batch, args.busy_rounds)


if __name__ == "__main__":
    main()
