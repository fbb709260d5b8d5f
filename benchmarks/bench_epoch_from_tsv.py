"""Does the data path keep up with the model? An epoch of `crossrank train` from a raw
Criteo-shaped TSV (parse, validate, encode, cache, train) against the training step alone.

Writes ``--rows`` rows of synthetic Criteo TSV (26 categorical fields of up to 100,000 values,
Zipf-distributed), then, in the same run and alternating:

    step only     samples/s of crossrank's training step on the benchmark's DLRM-DCN over
                  in-memory batches (``crossrank.train.throughput.measure``)
    epoch         ``crossrank train --data x.tsv --epochs 1`` with the same model, batch and
                  optimizer, no validation split, wall time from start to the saved model

and prints the epoch's rows/s as a share of the step's (the issue's target: >= 70%).

Run: .venv/bin/python benchmarks/bench_epoch_from_tsv.py [--rows 400000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["--model", "dlrm", "--embedding-dim", "16", "--model-option", "bottom_layers=[512,256,16]",
         "--model-option", "top_layers=[512,256]", "--model-option", "interaction=dcn",
         "--model-option", "cross.num_layers=3", "--model-option", "cross.rank=64",
         "--model-option", "sparse_gradients=true"]  # the step benchmark's model: make_model(True)


def write_tsv(path: Path, rows: int) -> None:
    from crossrank.data import make_synthetic_clicks, write_table

    sizes = [100_000] * 26
    with path.open("wb") as f:
        for start in range(0, rows, 200_000):
            part = path.with_suffix(".part")
            write_table(make_synthetic_clicks(min(200_000, rows - start), seed=start,
                                              vocab_size=sizes), part, fmt="criteo")
            f.write(part.read_bytes())
            part.unlink()


def step_rate(batch: int, threads: int) -> float:
    code = ("import torch; from crossrank.train.throughput import make_model, measure, "
            "synthetic_batches; from crossrank.train.config import TrainConfig; "
            f"torch.set_num_threads({threads}); torch.manual_seed(0); "
            f"print(measure(make_model(True), synthetic_batches({batch}), config=TrainConfig("
            f"optimizer='adagrad', lr=0.01, batch_size={batch}, threads={threads}), steps=30))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    return float(out.stdout.strip().splitlines()[-1])


def epoch_rate(data: Path, out: Path, rows: int, batch: int, threads: int) -> tuple[float, str]:
    """rows/s of the whole command, and where its wall time went (from its log and
    metrics.jsonl): start-up (imports, parser), encoding, model set-up, the epoch's steps,
    and the rest (saving the model and the resumable state, exit)."""
    cmd = [sys.executable, "-m", "crossrank", "train", "--data", str(data), "--epochs", "1",
           "--valid-fraction", "0", "--batch-size", str(batch), "--optimizer", "adagrad",
           "--lr", "0.01", "--threads", str(threads), "--no-progress", "--overwrite",
           "--hash-buckets", "100000", "--out", str(out), *MODEL]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "src"),
                                     PYTHONUNBUFFERED="1"))  # each line when it is printed
    seen: dict[str, float] = {}
    encoding = "?"
    assert proc.stdout is not None
    for line in proc.stdout:  # the time each line of the log appeared
        for key in ("encoded", "dlrm:", "epoch 1"):
            if line.startswith(key) and key not in seen:
                seen[key] = time.perf_counter() - start
        if line.startswith("encoded"):
            encoding = line.rsplit(" in ", 1)[-1].strip()
    if proc.wait():
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    total = time.perf_counter() - start
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    ready, epoch_end = seen.get("dlrm:", 0.0), seen.get("epoch 1", total)
    split = (f"start to model built {ready:.1f} s of which encoding {encoding}, epoch "
             f"{record['seconds']:.1f} s, epoch's end to exit {total - epoch_end:.1f} s, "
             f"total {total:.1f} s")
    return rows / total, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "criteo.tsv"
        write_tsv(data, args.rows)
        print(f"input: {args.rows:,} rows, {data.stat().st_size / 1e6:.0f} MB")
        for r in range(args.rounds):
            step = step_rate(args.batch, args.threads)
            epoch, split = epoch_rate(data, Path(tmp) / "run", args.rows, args.batch,
                                      args.threads)
            print(f"round {r + 1}: step only {step:,.0f} samples/s; epoch from the TSV "
                  f"{epoch:,.0f} rows/s = {epoch / step:.0%} of the step's rate ({split})")
        print(f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, batch {args.batch}, "
              f"{args.threads} threads, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
