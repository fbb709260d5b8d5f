"""Serving speed of a Criteo-shaped DCN-V2: the model alone, the Scorer, and HTTP end to end.

The model: 13 dense and 26 categorical fields of 100,000 ids (hashed, so every id exists),
D=16, DCN stacked, low-rank cross 64 x 3 layers, deep 512-256, random weights; exported with
``crossrank.serving.export`` (ONNX and torch.export) into a temporary directory. Rows are
synthetic Criteo clicks (:func:`crossrank.data.make_synthetic_clicks`).

Printed, as one markdown table:

* model only, 1 thread: PyTorch eager (the reference ops), ONNX Runtime on model.onnx, and the
  loaded ExportedProgram; batch-1 latency p50/p99 over ``--calls`` calls and rows/s at batch
  4,096 (inputs already encoded);
* the anchor of issue #14's ONNX target measured in this run (:mod:`serving_anchor`: the same
  shape as a plain PyTorch module exported to ONNX), alternating with crossrank's
  ``model.onnx``, and their ratio;
* ``Scorer`` raw rows -> scores at batch 4,096, encoding included (an Arrow table, and a list
  of dicts as JSON would give), 1 thread;
* HTTP end to end: ``crossrank serve`` in a subprocess (1 ONNX Runtime thread) and a bounded
  load generator (a fixed number of requests, ``--requests``, then it stops; a minimal
  HTTP/1.1 client on asyncio streams, keep-alive connections) on 127.0.0.1 at concurrency 1,
  8 and 64 with 1 and 100 rows per request; p50/p99 latency and rows/s. The load generator
  shares the machine's cores with the server.

Usage: python benchmarks/bench_serving.py [--calls 2000] [--requests 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from crossrank.data import FeatureEncoder, criteo_schema, make_synthetic_clicks
from crossrank.models import FeatureSchema, build_model
from crossrank.serving import Scorer
from crossrank.serving.export import INPUT_NAMES, export_model, sample_inputs, scoring_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_anchor import compare  # noqa: E402  (the benchmarks folder is not a package)

BATCH = 4096


def build(out: Path) -> tuple[Path, Path, object]:
    schema = criteo_schema()
    encoder = FeatureEncoder(schema, hash_buckets=99_999)  # 100,000 ids a field, 0 the missing
    encoder.fit([make_synthetic_clicks(1000, seed=0)])
    features = FeatureSchema(dense=encoder.dense_names, categorical=encoder.sparse_names,
                             vocab_sizes=encoder.vocab_sizes, embedding_dim=16)
    torch.manual_seed(0)
    model = build_model("dcn", features, {"structure": "stacked", "deep_layers": [512, 256],
                                          "cross": {"rank": 64, "num_layers": 3},
                                          "terms": {"fm_dim": 0}}).eval()
    export_model(model, encoder, schema, out / "onnx", fmt="onnx")
    export_model(model, encoder, schema, out / "pt2", fmt="pt2")
    return out / "onnx", out / "pt2", model


def latency(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """p50 and p99 of ``calls`` calls, in milliseconds (after 50 warm-up calls)."""
    for _ in range(50):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def rows_per_second(fn: Callable[[], object], rows: int, seconds: float = 2.0) -> float:
    fn()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 3:
        fn()
        done += 1
    return rows * done / (time.perf_counter() - start)


def model_rows(onnx_dir: Path, pt2_dir: Path, model: object, calls: int) -> list[list[str]]:
    import onnxruntime as ort

    torch.set_num_threads(1)
    graph, kinds = scoring_graph(model)  # type: ignore[arg-type]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    program = torch.export.load(pt2_dir / "model.pt2").module()
    out = []
    for name, run in (("PyTorch eager", lambda xs: graph(*xs)),
                      ("ONNX Runtime (model.onnx)", lambda xs: session.run(
                          None, {k: x.numpy() for k, x in zip(kinds, xs, strict=True)})),
                      ("ExportedProgram (model.pt2)", lambda xs: program(*xs))):
        one = sample_inputs(model, kinds, 1, seed=1)  # type: ignore[arg-type]
        big = sample_inputs(model, kinds, BATCH, seed=2)  # type: ignore[arg-type]
        with torch.no_grad():
            p50, p99 = latency(lambda r=run, x=one: r(x), calls)
            rate = rows_per_second(lambda r=run, x=big: r(x), BATCH)
        out.append([f"model only, 1 thread: {name}", f"{p50:.3f}", f"{p99:.3f}", f"{rate:,.0f}"])
    return out


def scorer_rows(onnx_dir: Path) -> list[list[str]]:
    scorer = Scorer(onnx_dir, threads=1)
    table = make_synthetic_clicks(BATCH, seed=3).drop_columns(["label"])
    records = table.to_pylist()
    out = []
    for name, rows in (("Arrow table", table), ("list of dicts", records)):
        rate = rows_per_second(lambda r=rows: scorer.score(r), BATCH)
        out.append([f"Scorer, raw rows -> scores, batch 4,096 ({name})", "", "", f"{rate:,.0f}"])
    return out


def multi_valued_rows(out: Path, calls: int) -> list[list[str]]:
    """The benchmark's model with one more field, ``M1``: 5 '|'-joined Zipf ids of 100,000
    (vocabulary fitted on 200,000 rows, sum pooling), exported to ONNX; the model alone and
    the Scorer, against the one-hot rows above."""
    import dataclasses

    import onnxruntime as ort
    from bench_encode import multi_valued_column

    from crossrank.data.multi_valued import MultiValuedSpec

    schema = dataclasses.replace(criteo_schema(), multi_valued=(MultiValuedSpec("M1", "|"),))

    def rows(n: int, seed: int):  # type: ignore[no-untyped-def]
        table = make_synthetic_clicks(n, seed=seed)
        return table.append_column("M1", multi_valued_column(n, seed))

    encoder = FeatureEncoder(schema, hash_buckets=99_999)
    encoder.fit([rows(200_000, 0)])
    features = FeatureSchema(dense=encoder.dense_names, categorical=encoder.sparse_names,
                             vocab_sizes=encoder.vocab_sizes, embedding_dim=16,
                             multi_valued=schema.multi_valued_names,
                             multi_valued_sizes=encoder.lists.sizes,
                             multi_valued_widths=encoder.lists.widths, pooling=("sum",))
    torch.manual_seed(0)
    model = build_model("dcn", features, {"structure": "stacked", "deep_layers": [512, 256],
                                          "cross": {"rank": 64, "num_layers": 3},
                                          "terms": {"fm_dim": 0}}).eval()
    export_model(model, encoder, schema, out / "mv_onnx", fmt="onnx")
    graph, kinds = scoring_graph(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(out / "mv_onnx" / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])

    def run(xs):  # type: ignore[no-untyped-def]
        return session.run(None, {INPUT_NAMES[k]: x.numpy() for k, x in zip(kinds, xs,
                                                                             strict=True)})

    one, big = (sample_inputs(model, kinds, n, seed=n) for n in (1, BATCH))
    p50, p99 = latency(lambda: run(one), calls)
    rate = rows_per_second(lambda: run(big), BATCH)
    scorer = Scorer(out / "mv_onnx", threads=1)
    table = rows(BATCH, 3).drop_columns(["label"])
    scored = rows_per_second(lambda: scorer.score(table), BATCH)
    return [["with a 5-element multi-valued field: ONNX Runtime (model.onnx), 1 thread",
             f"{p50:.3f}", f"{p99:.3f}", f"{rate:,.0f}"],
            ["with a 5-element multi-valued field: Scorer, batch 4,096 (Arrow table)", "", "",
             f"{scored:,.0f}"]]


async def load(port: int, bodies: list[bytes], concurrency: int) -> tuple[np.ndarray, float]:
    """Send every body once over ``concurrency`` keep-alive connections; per-request latency
    and wall time. A minimal HTTP/1.1 client on asyncio streams, so that the load generator
    costs the shared cores little next to the server (a full client library costs more per
    request than the server does)."""
    times = np.empty(len(bodies))
    queue = list(enumerate(bodies))[::-1]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                i, body = queue.pop()
                start = time.perf_counter()
                writer.write(b"POST /v1/score HTTP/1.1\r\nHost: bench\r\n"
                             b"Content-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                reply = await reader.readexactly(length)
                times[i] = time.perf_counter() - start
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(reply.decode())
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return times, time.perf_counter() - start


def http_rows(onnx_dir: Path, requests: int) -> list[list[str]]:
    import json

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "crossrank", "serve", str(onnx_dir),
                               "--port", str(port), "--threads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    out = []
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        records = make_synthetic_clicks(100 * 64, seed=4).drop_columns(["label"]).to_pylist()
        for per_request in (1, 100):
            count = requests if per_request == 1 else max(requests // 5, 64)
            bodies = [json.dumps({"rows": records[(i * per_request) % 6000:][:per_request]})
                      .encode() for i in range(count)]
            for concurrency in (1, 8, 64):
                asyncio.run(load(port, bodies[:50], concurrency))  # warm up
                times, wall = asyncio.run(load(port, bodies, concurrency))
                p50, p99 = np.percentile(times, [50, 99]) * 1e3
                out.append([f"HTTP, {per_request} row{'s' if per_request > 1 else ''} a request, "
                            f"concurrency {concurrency} ({count} requests)", f"{p50:.2f}",
                            f"{p99:.2f}", f"{per_request * count / wall:,.0f}"])
    finally:
        server.terminate()
        server.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="batch-1 calls per model")
    parser.add_argument("--requests", type=int, default=2000,
                        help="1-row HTTP requests per concurrency (100-row: a fifth)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of the anchor and crossrank's ONNX model")
    parser.add_argument("--quick", action="store_true", help="small counts: checks it runs")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.requests, args.rounds = 200, 200, 1
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir, pt2_dir, model = build(Path(tmp))
        rows = model_rows(onnx_dir, pt2_dir, model, args.calls)
        rows += compare(onnx_dir / "model.onnx", rounds=args.rounds, calls=args.calls // 2)
        rows += scorer_rows(onnx_dir) + multi_valued_rows(Path(tmp), args.calls)
        rows += http_rows(onnx_dir, args.requests)
    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}\n")
    print("| what | p50 ms | p99 ms | rows/s |\n|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
