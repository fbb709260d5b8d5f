"""What the weight average (``training.ema_decay``) costs a training step: `crossrank bench`'s
DLRM-DCN (26 sparse-gradient tables of ``--rows`` rows x 16, batch 2,048, Adam/SparseAdam,
2 threads) without an average, with every weight averaged at every update (``lazy_tables``
empty: how the average worked before session 10) and with the sparse tables averaged lazily
(:mod:`crossrank.train.averaging`; what training does), alternating, fresh model each run.
Also the time to read the lazy average once (what validation and a checkpoint pay).

Usage: python benchmarks/bench_weight_average.py [--rows 100000] [--steps 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import crossrank.train.throughput as throughput
from crossrank.distributed.sparse_gradients import sparse_tables
from crossrank.train.averaging import WeightAverage
from crossrank.train.config import TrainConfig
from crossrank.train.step import TrainStep


def run(mode: str, steps: int, batches: list) -> tuple[float, float]:
    """Median step time (ms, the average's update included) and one read of the average (ms)."""
    torch.manual_seed(0)
    model = throughput.make_model(True)
    average = None if mode == "none" else WeightAverage(
        model, decay=0.995, lazy_tables=sparse_tables(model) if mode == "lazy" else ())
    hooks = [average.before_step] if mode == "lazy" and average is not None else []
    step = TrainStep(model, TrainConfig(optimizer="adam", lr=1e-3, batch_size=2048),
                     after_backward=hooks)
    times = []
    for i in range(steps + 5):  # 5 warm-up steps (first touches of the tables' pages)
        started = time.perf_counter()
        step(*batches[i % len(batches)], step=i, total_steps=steps + 5)
        if average is not None:
            average.update()
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    if average is not None:
        average.averages()
    return statistics.median(times[5:]) * 1e3, (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=throughput.VOCAB, help="rows per table")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    throughput.VOCAB = args.rows
    torch.set_num_threads(2)
    batches = throughput.synthetic_batches(2048)
    print(f"26 tables of {args.rows:,} x 16 (sparse gradients), batch 2,048, 2 threads, "
          f"median of {args.steps} steps")
    print(f"{'round':>5s} {'average':8s} {'step ms':>8s} {'its cost ms':>11s} {'read ms':>8s}")
    for r in range(1, args.rounds + 1):
        base = None
        for mode in ("none", "full", "lazy"):
            step_ms, read_ms = run(mode, args.steps, batches)
            base = step_ms if mode == "none" else base
            cost = "" if mode == "none" else f"{step_ms - base:11.1f}"
            read = "" if mode != "lazy" else f"{read_ms:8.1f}"
            print(f"{r:5d} {mode:8s} {step_ms:8.1f} {cost:>11s} {read:>8s}")


if __name__ == "__main__":
    main()
