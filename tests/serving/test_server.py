"""``crossrank serve`` in a subprocess on 127.0.0.1 (where torch cannot be imported), talked
to over HTTP: scores in each request's own row order under concurrency, bad requests answered
400/413 naming row and column while good ones interleaved with them are answered correctly,
metrics, and a SIGTERM that lets the request in flight finish before the process exits 0."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pyarrow as pa
import pytest

from crossrank.data import TableSchema, read_table
from crossrank.serving import Scorer
from crossrank.serving.batcher import Batcher
from crossrank.serving.metrics import Metrics
from crossrank.serving.rows import from_records

# `crossrank serve` in a process where importing torch fails: serving needs none
WITHOUT_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from crossrank.cli import main
sys.exit(main(sys.argv[1:]))
"""
MAX_BODY = 300_000
MAX_ROWS = 300


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(model_dir, data):
    meta = json.loads((model_dir / "model.json").read_text())
    schema = TableSchema.from_dict(meta["table_schema"])
    return read_table(data, fmt="criteo", schema=schema).drop_columns([schema.label]).to_pylist()


def _start(export_dir):
    """(url, process) of ``crossrank serve export_dir`` once it answers /healthz."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_TORCH, "serve", str(export_dir), "--port", str(port),
         "--threads", "1", "--max-wait-ms", "20", "--max-batch-rows", "64",
         "--max-request-rows", str(MAX_ROWS), "--max-body-bytes", str(MAX_BODY)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).json() == {"status": "ok"}:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the server did not start: {proc.communicate()[0]}")
        time.sleep(0.2)
    return url, proc


@pytest.fixture(scope="module")
def server(criteo_export):
    model_dir, export_dir, data = criteo_export
    url, proc = _start(export_dir)
    records = _records(model_dir, data)
    yield url, proc, records, Scorer(export_dir).score(records)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_metadata_and_health(server):
    url, _, records, _ = server
    meta = httpx.get(url + "/v1/metadata").json()
    assert [c["name"] for c in meta["columns"]] == [f"I{i}" for i in range(1, 14)] + \
        [f"C{i}" for i in range(1, 27)]
    assert meta["output"]["meaning"] == "probability" and meta["model"]["name"] == "dcn"


def test_concurrent_clients_each_get_their_own_rows_in_order(server):
    url, _, records, expected = server
    rng = np.random.default_rng(0)
    requests = [rng.choice(len(records), size=int(rng.integers(1, 30)), replace=False)
                for _ in range(80)]

    def send(rows):
        with httpx.Client() as client:
            got = client.post(url + "/v1/score", json={"rows": [records[i] for i in rows]})
        return got.status_code, got.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, requests))
    for rows, (status, body) in zip(requests, answers):
        assert status == 200, body
        np.testing.assert_allclose(body["scores"], expected[rows], rtol=0, atol=1e-7)


def test_a_csv_body_scores_like_json(server):
    url, _, records, expected = server
    names = list(records[0])
    lines = [",".join(names)] + [",".join("" if r[n] is None else str(r[n]) for n in names)
                                 for r in records[:20]]
    got = httpx.post(url + "/v1/score", content="\n".join(lines) + "\n",
                     headers={"content-type": "text/csv"})
    assert got.status_code == 200, got.text
    np.testing.assert_allclose(got.json()["scores"], expected[:20], rtol=0, atol=1e-7)
    missing = "\n".join(line.rsplit(",", 1)[0] for line in lines[:3])
    bad = httpx.post(url + "/v1/score", content=missing, headers={"content-type": "text/csv"})
    assert bad.status_code == 400 and bad.json()["error"]["column"] == "C26"


def _bad_requests(records):
    good = records[:4]
    yield b"{\"rows\": [", 400, ("malformed_json", None, None)
    yield json.dumps({"rows": [good[0], "not a row"]}), 400, ("not_an_object", 1, None)
    yield json.dumps({"no rows": []}), 400, ("malformed_json", None, None)
    row = dict(good[1])
    del row["C7"]
    yield json.dumps({"rows": [good[0], row]}), 400, ("missing_column", 1, "C7")
    yield json.dumps({"rows": good[:2] + [dict(good[2], I3="abc")]}), 400, \
        ("non_numeric", 2, "I3")
    yield json.dumps({"rows": [dict(good[0], I4=float("nan"))]}), 400, ("non_finite", 0, "I4")
    yield json.dumps({"rows": [good[0], dict(good[1], I9=float("inf"))]}), 400, \
        ("non_finite", 1, "I9")
    yield json.dumps({"rows": [dict(good[0], C2=2.5)]}), 400, ("bad_value", 0, "C2")
    yield json.dumps({"rows": good * (MAX_ROWS // 4 + 1)}), 400, ("too_many_rows", None, None)
    yield b"[" + b" " * MAX_BODY + b"]", 413, ("body_too_large", None, None)


def test_bad_requests_interleaved_with_good_ones(server):
    url, proc, records, expected = server
    bad = list(_bad_requests(records))
    jobs = []
    for k, case in enumerate(bad * 3):
        start = (7 * k) % (len(records) - 10)
        jobs.append(("good", list(range(start, start + 1 + k % 9))))
        jobs.append(("bad", case))

    def send(job):
        kind, what = job
        with httpx.Client() as client:
            if kind == "good":
                got = client.post(url + "/v1/score", json={"rows": [records[i] for i in what]})
            else:
                got = client.post(url + "/v1/score", content=what[0],
                                  headers={"content-type": "application/json"})
        return got.status_code, got.json()

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, jobs))
    for (kind, what), (status, body) in zip(jobs, answers):
        if kind == "good":
            assert status == 200, body
            np.testing.assert_allclose(body["scores"], expected[what], rtol=0, atol=1e-7)
        else:
            error = body["error"]
            assert status == what[1], body
            assert (error["kind"], error["row"], error["column"]) == what[2], body
            if what[2][1] is not None:
                assert f"row {what[2][1]}" in error["message"]
    assert proc.poll() is None
    metrics = httpx.get(url + "/metrics").text
    assert 'crossrank_requests_total{path="/v1/score",code="413"} 3' in metrics
    assert 'crossrank_errors_total{kind="non_finite"} 6' in metrics
    count = next(line for line in metrics.splitlines()
                 if line.startswith("crossrank_request_duration_seconds_count"))
    assert int(count.split()[1]) >= len(jobs)


def test_micro_batches_hold_whole_requests_and_isolate_a_bad_one(criteo_export):
    """Requests queued together share model calls of at most max_batch_rows; each gets its own
    scores, and a bad row fails only its own request (its row index counted within it)."""
    model_dir, export_dir, data = criteo_export
    scorer = Scorer(export_dir, threads=1)
    records = _records(model_dir, data)[:30]
    expected = scorer.score(records)
    requests = [from_records(records[i:i + 3], scorer.schema) for i in range(0, 30, 3)]
    # a value only the batch's check sees (the JSON path refuses it before queueing)
    requests[4]["I1"] = pa.array([1.0, float("inf"), None])

    async def run():
        metrics = Metrics()
        batcher = Batcher(scorer, max_batch_rows=8, max_wait_ms=50, metrics=metrics)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.score(r, 3) for r in requests),
                return_exceptions=True), metrics
        finally:
            await batcher.stop()

    results, metrics = asyncio.run(run())
    for i, result in enumerate(results):
        if i == 4:
            assert (result.kind, result.row, result.column) == ("non_finite", 1, "I1")
        else:
            np.testing.assert_allclose(result, expected[3 * i:3 * i + 3], rtol=0, atol=1e-7)
    # 10 requests of 3 rows, 8 rows a call at most: two requests a call, the bad one's partner
    # scored alone
    assert metrics.batches == 5 and metrics.batch_rows == 27


def test_a_lone_request_is_scored_at_once_and_arriving_ones_are_waited_for(criteo_export):
    """With a minute's max wait, a request with no other on its way is scored without waiting;
    while another is being received (``arriving``), the batch waits for it and both share one
    model call."""
    model_dir, export_dir, data = criteo_export
    scorer = Scorer(export_dir, threads=1)
    records = _records(model_dir, data)[:9]
    expected = scorer.score(records)
    a, b, c = (from_records(records[i:i + 3], scorer.schema) for i in range(0, 9, 3))

    async def run():
        metrics = Metrics()
        batcher = Batcher(scorer, max_batch_rows=64, max_wait_ms=60_000, metrics=metrics)
        batcher.start()
        try:
            alone = await asyncio.wait_for(batcher.score(a, 3), timeout=20)  # not 60 s
            assert metrics.batches == 1
            gate = batcher.arriving()
            gate.__enter__()  # a request is being received
            waiting = asyncio.ensure_future(batcher.score(b, 3))
            await asyncio.sleep(0.3)
            assert not waiting.done() and metrics.batches == 1  # held for the arriving one
            late = asyncio.ensure_future(batcher.score(c, 3))
            gate.__exit__(None, None, None)
            together = await asyncio.wait_for(asyncio.gather(waiting, late), timeout=20)
            return alone, together, metrics
        finally:
            await batcher.stop()

    alone, (second, third), metrics = asyncio.run(run())
    np.testing.assert_allclose(np.concatenate([alone, second, third]), expected, atol=1e-7)
    assert metrics.batches == 2 and metrics.batch_rows == 9


def test_small_batches_are_scored_on_the_loop_thread_big_ones_in_the_worker(criteo_export,
                                                                           monkeypatch):
    """A batch of at most INLINE_ROWS rows skips the hand-off to the worker thread (its latency
    is mostly the hand-off); a bigger one leaves the event loop free while the model runs.
    Both score the same."""
    import threading

    from crossrank.serving import batcher as batcher_module

    model_dir, export_dir, data = criteo_export
    scorer = Scorer(export_dir, threads=1)
    records = _records(model_dir, data)
    small = batcher_module.INLINE_ROWS
    assert len(records) > small
    expected = scorer.score(records[:small + 1])
    threads: list[int] = []
    score_typed = scorer.score_typed
    monkeypatch.setattr(scorer, "score_typed",
                        lambda table: threads.append(threading.get_ident()) or score_typed(table))

    async def run():
        batcher = Batcher(scorer, max_batch_rows=4096, max_wait_ms=0, metrics=Metrics())
        batcher.start()
        try:
            loop_thread = threading.get_ident()
            few = await batcher.score(from_records(records[:small], scorer.schema), small)
            more = await batcher.score(from_records(records[:small + 1], scorer.schema),
                                       small + 1)
            return loop_thread, few, more
        finally:
            await batcher.stop()

    loop_thread, few, more = asyncio.run(run())
    assert threads[0] == loop_thread and threads[1] != loop_thread
    np.testing.assert_allclose(few, expected[:small], rtol=0, atol=1e-7)
    np.testing.assert_allclose(more, expected, rtol=0, atol=1e-7)


def test_sigterm_finishes_the_request_in_flight_then_exits_0(server):
    url, proc, records, expected = server
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"rows": records[:5]}).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        deadline = time.monotonic() + 30
        while "crossrank_requests_in_flight 1" not in httpx.get(url + "/metrics").text:
            assert time.monotonic() < deadline, "the request never reached the handler"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the server is shutting down with the request half-read
        sock.sendall(body[10:])
        reply = b""
        while not reply.endswith(b"}") and (chunk := sock.recv(65536)):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply
    np.testing.assert_allclose(json.loads(payload)["scores"], expected[:5], rtol=0, atol=1e-7)
    assert proc.wait(timeout=30) == 0


def test_multi_valued_rows_as_lists_joined_text_or_csv(genres_export):
    """A multi-valued column given as JSON lists, as joined text or in a CSV body, the forms
    mixed in concurrent requests (so in one model call), scores as the Scorer does; a list of
    non-scalars or over the length limit is a 400 naming row and column."""
    model_dir, export_dir, data = genres_export
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(data, convert_options=pa_csv.ConvertOptions(
        column_types={"city": pa.string(), "genres": pa.string()}, strings_can_be_null=True))
    joined = table.drop_columns(["label"]).to_pylist()
    lists = [dict(r, genres=None if r["genres"] is None else r["genres"].split("|"))
             for r in joined]
    expected = Scorer(export_dir).score_file(data)
    text = data.read_text().splitlines()
    header, lines = text[0].split(",", 1)[1], [t.split(",", 1)[1] for t in text[1:]]
    url, proc = _start(export_dir)
    try:
        def send(k):
            rows = list(range(5 * k, 5 * k + 5))
            with httpx.Client() as client:
                if k % 3 == 2:
                    got = client.post(url + "/v1/score", headers={"content-type": "text/csv"},
                                      content="\n".join([header] + [lines[i] for i in rows]))
                else:
                    form = lists if k % 3 else joined
                    got = client.post(url + "/v1/score", json={"rows": [form[i] for i in rows]})
            return rows, got.status_code, got.json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(len(lines) // 5)))
        for rows, status, body in answers:
            assert status == 200, body
            np.testing.assert_allclose(body["scores"], expected[rows], rtol=0, atol=1e-7)
        for value, detail in (([{"a": 1}], "must be a list of texts"),
                              (["g1"] * 10_001, "more than 10,000 elements")):
            got = httpx.post(url + "/v1/score", json={"rows": [lists[0],
                                                               dict(lists[1], genres=value)]})
            error = got.json()["error"]
            assert got.status_code == 400 and (error["row"], error["column"]) == (1, "genres")
            assert detail in error["message"] and "row 1, column 'genres'" in error["message"]
        meta = httpx.get(url + "/v1/metadata").json()
        assert meta["columns"][2] == {"name": "genres", "kind": "multi_valued",
                                      "separator": "|", "pooling": "mean", "max_length": 4,
                                      "keep": "last"}
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
