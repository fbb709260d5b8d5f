"""Encoding time of ``crossrank train`` on one process vs data-parallel ranks that each parse
their own shards of the data.

The script writes ``--rows`` synthetic Criteo rows as ``--shards`` TSV files (the writer of
``memory_streaming.py``; kept between runs with ``--workdir``), then runs one epoch of a small
DCN, ``--repeats`` times for each process count of ``--nproc``:

    python -m crossrank train --data DIR --format criteo --epochs 1 --nproc N --threads T ...

with T = ``--threads`` (torch threads per rank; parsing is one thread per rank). It reports the time to
fit the encoder and encode the cache (the "encoded ... rows in X s" line of rank 0, which
includes joining the ranks' parts) and the wall time of the whole command. ``--baseline REV``
adds, in each repeat, the same runs of the code at git revision REV (``git archive`` of its
``src/`` into the work directory, put first on PYTHONPATH) with the most processes, so that
both are measured under the same load.

Usage:
    python benchmarks/encode_ddp.py                                   # 2M rows, 8 shards
    python benchmarks/encode_ddp.py --rows 200000 --repeats 1         # a quick look
    python benchmarks/encode_ddp.py --workdir /tmp/encwork --keep     # reuse the shards
    python benchmarks/encode_ddp.py --baseline c0e0c70                # vs rank 0 encoding alone
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory_streaming import write_shards


def checkout(rev: str, into: Path) -> Path:
    """``src/`` of git revision ``rev`` of this repository, extracted under ``into``."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def run(data: Path, out: Path, nproc: int, threads: int, batch_size: int,
        src: Path | None = None) -> dict[str, float]:
    """One epoch of ``crossrank train`` (of the code in ``src``, if given); its encode and
    wall seconds."""
    command = [sys.executable, "-m", "crossrank", "train", "--data", str(data),
               "--format", "criteo", "--epochs", "1", "--out", str(out), "--no-progress",
               "--nproc", str(nproc), "--threads", str(threads), "--batch-size", str(batch_size),
               "--embedding-dim", "4", "--model", "dcn", "--model-option", "cross.rank=8",
               "--model-option", "deep_layers=[32]"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    for attempt in range(3):  # older code can abort at exit (see distributed.cleanup)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if done.returncode == 0 or "terminate called without" not in done.stdout + done.stderr:
            break
        print(f"  aborted at exit ('terminate called'), run again ({attempt + 1})",
              file=sys.stderr, flush=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    encoded = re.search(r"encoded ([\d,]+) rows in ([\d.]+)s", done.stdout)
    if encoded is None:
        raise RuntimeError(f"no 'encoded ... rows' line in the output:\n{done.stdout[-3000:]}")
    return {"rows": int(encoded.group(1).replace(",", "")), "encode_s": float(encoded.group(2)),
            "wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the shards and runs go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the shards")
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="also measure the code of this git revision (e.g. c0e0c70)")
    args = p.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossrank-encode-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"data-{args.rows}-{args.shards}"
    results = []
    try:
        write_shards(data, args.rows, -(-args.rows // args.shards))
        codes: list[tuple[str, Path | None]] = [("this", None)]
        if args.baseline:
            base = workdir / f"baseline-{args.baseline}"
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            codes.append((args.baseline, checkout(args.baseline, base)))
        for repeat in range(1, args.repeats + 1):
            for label, src in codes:
                for nproc in args.nproc if src is None else [max(args.nproc)]:
                    out = workdir / f"run-{nproc}"
                    if out.exists():
                        shutil.rmtree(out)
                    threads = args.threads
                    r = run(data, out, nproc, threads, args.batch_size, src)
                    results.append({"code": label, "repeat": repeat, "nproc": nproc,
                                    "threads": threads, **r})
                    print(f"{label}, repeat {repeat}, {nproc} process(es): encode "
                          f"{r['encode_s']:.1f} s, wall {r['wall_s']:.1f} s", file=sys.stderr,
                          flush=True)
                    shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)

    print(f"\ncrossrank train, {args.rows:,} synthetic Criteo rows in {args.shards} TSV shards, "
          f"1 epoch, dcn D=4 rank=8 deep=[32], batch {args.batch_size}\n")
    print("| code | repeat | processes x threads | rows | encode s | speed-up | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        # speed-up over one process of this code in the same repeat
        base = next((b for b in results if b["repeat"] == r["repeat"] and b["nproc"] == 1
                     and b["code"] == "this"), r)
        print(f"| {r['code']} | {r['repeat']} | {r['nproc']} x {r['threads']} | {r['rows']:,} | "
              f"{r['encode_s']:.1f} | {base['encode_s'] / r['encode_s']:.2f} | "
              f"{r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
