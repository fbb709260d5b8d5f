"""What TrainStep's check for NaN or infinite updates costs, beside the step it guards.

On ``crossrank bench``'s DLRM-DCN (26 tables of 100,000 rows, batch 2048) it times, after a
real forward and backward, the parts of a step and the two things the check adds: making a
non-finite loss give NaN gradients (three scalar ops) and the gradient norm with its one host
sync (clipping computes that norm anyway). Whole-step A/B timings on a shared machine vary
more than the check costs; the parts do not.

Run: ``PYTHONPATH=src python benchmarks/bench_nonfinite_check.py [--threads 2] [--reps 6]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from crossrank.models.task import loss_fn
from crossrank.train.config import TrainConfig
from crossrank.train.step import TrainStep
from crossrank.train.throughput import make_model, synthetic_batches


def parts(sparse: bool, reps: int) -> dict[str, float]:
    """Median ms of each part of a step over ``reps`` steps (the first one not counted)."""
    torch.manual_seed(0)
    model = make_model(sparse)
    model.train()
    step = TrainStep(model, TrainConfig(lr=1e-3, batch_size=2048))
    dense, ids, label = synthetic_batches(2048, count=1)[0]
    times: dict[str, list[float]] = {k: [] for k in ("forward", "backward", "optimizer",
                                                      "NaN-gradient ops", "norm + sync")}
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        total = loss_fn(model.task, model(dense, ids), label) + model.regularization()
        t1 = time.perf_counter()
        total = total * torch.where(torch.isfinite(total.detach()), 1.0, math.nan)
        t2 = time.perf_counter()
        step.optimizer.zero_grad()
        total.backward()
        t3 = time.perf_counter()
        assert bool(torch.isfinite(step._gradient_norm()))
        t4 = time.perf_counter()
        step.optimizer.step()
        t5 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t3 - t2, t5 - t4, t2 - t1, t4 - t3)):
            times[key].append(dt)
    return {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"ms per step, median of {args.reps}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'embedding gradients':<20}" + "".join(f"{k:>18}" for k in (
        "forward", "backward", "optimizer", "NaN-gradient ops", "norm + sync", "check share")))
    for sparse in (True, False):
        t = parts(sparse, args.reps)
        step = t["forward"] + t["backward"] + t["optimizer"]
        share = (t["NaN-gradient ops"] + t["norm + sync"]) / step
        print(f"{'sparse' if sparse else 'dense':<20}" + "".join(f"{v:>18.2f}" for v in t.values())
              + f"{share:>18.2%}")


if __name__ == "__main__":
    main()
