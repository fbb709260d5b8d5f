"""Peak memory of ``crossrank train`` as the data grows: 1M vs 10M synthetic Criteo rows.

For each row count the script writes the rows as TSV shards of ``--shard-rows`` (one shard in
memory at a time, so writing is memory-flat too), runs one epoch of

    python -m crossrank train --data DIR --format criteo --epochs 1 --threads 2 ...

in a child process and reports its peak resident set size (``ru_maxrss`` from ``wait4``: the
largest of the child and, under ``--nproc``, its torchrun ranks), the training throughput and
the wall time. The target of issue #6: the peak for 10x the rows within 10% of the smaller run.

What grows with the rows by design (and is in the figure): the validation split's scores and
labels (10% of the rows, 16 bytes each: 16 MB at 10M rows) and scikit-learn's AUC over them.
What does not: the encoder (vocabularies grow with distinct values, fixed here), the text
reader (chunks of 65,536 rows), the cache writer (appends to files) and the epoch (one
shuffle window of 262,144 rows read at a time, see ``crossrank.data.order``).

Usage:
    python benchmarks/memory_streaming.py                        # 1M and 10M rows
    python benchmarks/memory_streaming.py --rows 100000 1000000  # a quick look
    python benchmarks/memory_streaming.py --workdir /data/tmp --keep   # reuse written shards
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_shards(directory: Path, rows: int, shard_rows: int) -> int:
    """``rows`` synthetic Criteo rows as ``part-NNNNN.tsv`` shards; returns the shard count."""
    from crossrank.data import write_default_synthetic

    done = directory / "_COMPLETE"  # hidden from list_shards by its leading underscore
    shards = -(-rows // shard_rows)
    if done.is_file() and done.read_text() == f"{rows} {shard_rows}":
        return shards
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for k in range(shards):
        # one seed per shard: different rows of the same click model ("world")
        write_default_synthetic(directory / f"part-{k:05d}.tsv",
                                min(shard_rows, rows - k * shard_rows), seed=1000 + k)
    done.write_text(f"{rows} {shard_rows}")
    return shards


def run_training(data: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    """One epoch in a child process; its peak RSS, throughput and wall time."""
    command = [sys.executable, "-m", "crossrank", "train", "--data", str(data),
               "--format", "criteo", "--epochs", "1", "--out", str(out), "--no-progress",
               "--threads", str(args.threads), "--batch-size", str(args.batch_size),
               "--embedding-dim", str(args.embedding_dim), "--model", "dcn",
               "--model-option", f"cross.rank={args.rank}",
               "--model-option", f"cross.num_layers={args.cross_layers}",
               "--model-option", "terms.fm_dim=0",
               "--model-option", f"deep_layers={json.dumps(args.deep_layers)}",
               "--optimizer", "adam", "--lr", "1e-3", "--nproc", str(args.nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    log = out.with_suffix(".log")
    with open(log, "w") as fh:
        child = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env)
        # wait4 gives the child's rusage; its ru_maxrss covers the waited-for ranks too
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    text = log.read_text()
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{text[-3000:]}")
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    encoded = re.search(r"encoded ([\d,]+) rows in ([\d.]+)s", text)
    return {
        "peak_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "train_rows_per_s": record["samples_per_s"],
        "train_s": record["seconds"],
        "encode_s": float(encoded.group(2)) if encoded else float("nan"),
        "wall_s": wall,
        "valid_auc": record.get("valid", {}).get("auc", float("nan")),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--shard-rows", type=int, default=250_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nproc", type=int, default=1, help="DDP ranks (torchrun, gloo)")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--embedding-dim", type=int, default=4)
    p.add_argument("--rank", type=int, default=8, help="low rank of the cross layers")
    p.add_argument("--cross-layers", type=int, default=2)
    p.add_argument("--deep-layers", type=json.loads, default=[32],
                   help="JSON list of the deep part's widths")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where shards and runs go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the shards and runs")
    args = p.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossrank-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for rows in args.rows:
            started = time.perf_counter()
            shards = write_shards(workdir / f"data-{rows}", rows, args.shard_rows)
            written = time.perf_counter() - started
            out = workdir / f"run-{rows}"
            if out.exists():
                shutil.rmtree(out)
            result = run_training(workdir / f"data-{rows}", out, args)
            results.append({"rows": rows, "shards": shards, "write_s": written, **result})
            print(f"{rows:,} rows: peak {result['peak_mib']:.0f} MiB, "
                  f"{result['train_rows_per_s']:,.0f} rows/s, {result['wall_s']:.0f} s",
                  file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(out)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    base = results[0]["peak_mib"]
    print(f"\ncrossrank train, 1 epoch, dcn D={args.embedding_dim} rank={args.rank} "
          f"cross layers={args.cross_layers} deep={args.deep_layers}, batch {args.batch_size}, "
          f"{args.threads} threads, {args.nproc} process(es)\n")
    print("| rows | shards | peak RSS MiB | ratio | train rows/s | encode s | train s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['shards']} | {r['peak_mib']:.0f} | "
              f"{r['peak_mib'] / base:.3f} | {r['train_rows_per_s']:,.0f} | "
              f"{r['encode_s']:.1f} | {r['train_s']:.1f} | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
