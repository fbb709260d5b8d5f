"""Rows per second of the data path on a Criteo-shaped TSV: parse, validate, encode, cache.

Writes ~1M rows of synthetic Criteo TSV to a temporary directory (or, with ``--head10k``,
the shared Criteo head10k repeated), then times, over the whole file:

    pyarrow parse (inferred)    pyarrow.csv streaming read with type inference: the baseline
    pyarrow parse (binary)      the same with every column read as binary, as the reader does
    read + validate             crossrank.data.iter_tables (typed, every bad-row check)
    read + validate + encode    ... + FeatureEncoder.transform (vocabulary, then hashing) on
                                the default threads (crossrank.data.encode_stream: what
                                evaluate, predict and explain read; 2 on a free machine, else
                                1); "1 thread": in the calling thread
    encode to cache             ... + writing the memory-mapped .npy cache

pyarrow's memory pool is the one the ``crossrank`` command chooses (jemalloc where pyarrow has
it: :func:`crossrank.data.memory_pool.prefer_jemalloc`); ``--default-pool`` keeps pyarrow's
own default.

With ``--multi-valued`` every row gets a 40th column, a multi-valued field of 5 '|'-joined
Zipf ids of 100,000 (declared ``M1:|``), encoded with its own vocabulary and stored jagged.

Usage: python benchmarks/bench_encode.py [--rows 1000000] [--head10k] [--chunk-rows 65536]
       [--multi-valued] [--default-pool]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from crossrank.data import (
    FeatureEncoder,
    TableSchema,
    criteo_schema,
    encode_stream,
    encode_to_cache,
    iter_tables,
    make_synthetic_clicks,
    write_table,
)
from crossrank.data.memory_pool import prefer_jemalloc
from crossrank.data.multi_valued import MultiValuedSpec
from crossrank.spare_cores import encoding_workers, others_busy

SHARED_HEAD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "criteo" / (
    "criteo_kaggle_head10k.tsv")


def multi_valued_column(rows: int, seed: int) -> pa.Array:
    """5 '|'-joined Zipf ids of 100,000 per row, without a Python loop over rows."""
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.2, rows * 5), 100_000)
    offsets = pa.array(np.arange(0, rows * 5 + 1, 5, dtype=np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, pc.cast(pa.array(ids), pa.string())),
                          "|")


def write_input(path: Path, rows: int, head10k: bool, multi_valued: bool = False) -> None:
    if head10k:
        if not SHARED_HEAD.is_file():
            raise SystemExit(f"--head10k: {SHARED_HEAD} not found")
        if multi_valued:
            raise SystemExit("--head10k and --multi-valued: use the synthetic input")
        block = SHARED_HEAD.read_bytes()
        with path.open("wb") as f:
            for _ in range(max(1, rows // 10_000)):
                f.write(block)
        return
    # Criteo-like cardinalities: a few tiny fields, most in the thousands, some large
    sizes = [[4, 100, 1000, 10_000, 100_000, 500_000][i % 6] for i in range(26)]
    with path.open("wb") as f:
        step = 250_000
        for start in range(0, rows, step):
            table = make_synthetic_clicks(min(step, rows - start), seed=start, vocab_size=sizes)
            if multi_valued:
                table = table.append_column("M1", multi_valued_column(table.num_rows, start))
            write_table(table, path.with_suffix(".part"), fmt="criteo")
            f.write(path.with_suffix(".part").read_bytes())
    path.with_suffix(".part").unlink()


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    """Rows, wall seconds and CPU seconds (all threads of this process): on a shared machine
    the CPU time shows the work done even when other processes stretch the wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = fn()
    return rows, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--head10k", action="store_true", help="repeat the shared head10k")
    parser.add_argument("--chunk-rows", type=int, default=65536)
    parser.add_argument("--multi-valued", action="store_true",
                        help="add a 5-element '|'-joined multi-valued column")
    parser.add_argument("--default-pool", action="store_true",
                        help="keep pyarrow's default memory pool (the command uses jemalloc)")
    args = parser.parse_args()
    pool = pa.default_memory_pool().backend_name if args.default_pool else prefer_jemalloc()
    print(f"pyarrow memory pool: {pool}")
    schema: TableSchema = criteo_schema()
    if args.multi_valued:
        schema = dataclasses.replace(schema, multi_valued=(MultiValuedSpec("M1", "|"),))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "criteo.tsv"
        started = time.perf_counter()
        write_input(path, args.rows, args.head10k, args.multi_valued)
        size_mb = path.stat().st_size / 1e6
        print(f"input: {path.name}, {size_mb:.0f} MB, written in "
              f"{time.perf_counter() - started:.1f}s ({'head10k' if args.head10k else 'synthetic'})")
        path.read_bytes()  # warm the page cache so every stage reads from memory

        def tables() -> Iterator[pa.Table]:
            return iter_tables(path, fmt="criteo", schema=schema, chunk_rows=args.chunk_rows)

        def pyarrow_parse(types: dict[str, pa.DataType] | None) -> Callable[[], int]:
            def run() -> int:
                options = pa_csv.ReadOptions(column_names=list(schema.column_names),
                                             block_size=1 << 24)
                parse = pa_csv.ParseOptions(delimiter="\t", quote_char=False)
                convert = pa_csv.ConvertOptions(column_types=types)
                with pa_csv.open_csv(path, read_options=options, parse_options=parse,
                                     convert_options=convert) as reader:
                    return sum(batch.num_rows for batch in reader)
            return run

        started = time.perf_counter()
        vocab = FeatureEncoder(schema, min_count=2).fit(itertools.islice(tables(), 4))
        fit_s = time.perf_counter() - started
        hashed = FeatureEncoder(schema, hash_buckets=1 << 20).fit(
            itertools.islice(tables(), 1 if args.multi_valued else 0))
        busy = others_busy()
        print(f"other processes' CPU use: {busy if busy is None else round(busy, 2)} cores; "
              f"encoding threads by default: {encoding_workers(busy=busy)}")
        print(f"encoder fitted on the first {4 * args.chunk_rows:,} rows in {fit_s:.1f}s; "
              f"vocabulary sizes {min(vocab.vocab_sizes):,}..{max(vocab.vocab_sizes):,}")

        def encode(encoder: FeatureEncoder, workers: int | None = None) -> Callable[[], int]:
            return lambda: sum(len(b) for _, b in encode_stream(tables(), encoder,
                                                                 workers=workers))

        stages = [
            ("pyarrow parse (inferred types)", pyarrow_parse(None)),
            ("pyarrow parse (binary columns)",
             pyarrow_parse({c: pa.binary() for c in schema.column_names})),
            ("read + validate", lambda: sum(t.num_rows for t in tables())),
            ("read + validate + encode (vocab)", encode(vocab)),
            ("... (vocab), 1 thread", encode(vocab, workers=1)),
            ("read + validate + encode (hash)", encode(hashed)),
            ("encode to cache (vocab)",
             lambda: len(encode_to_cache(tables(), vocab, Path(tmp) / "cache", overwrite=True))),
        ]
        results = [(name, *timed(fn)) for name, fn in stages]
        base = results[0][1] / results[0][2]
        print(f"\n{'stage':34s} {'rows':>10s} {'wall s':>7s} {'cpu s':>6s} {'rows/s':>10s} "
              f"{'vs parse':>8s}")
        for name, rows, seconds, cpu in results:
            rate = rows / seconds
            print(f"{name:34s} {rows:10,d} {seconds:7.2f} {cpu:6.2f} {rate:10,.0f} "
                  f"{rate / base:8.2f}")
        print(f"\n(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
