"""``crossrank serve``: an HTTP scoring service over an ONNX export (Starlette on uvicorn).

Endpoints:

* ``POST /v1/score``: ``{"rows": [{"C1": "68fd1e64", "I1": 3, ...}, ...]}`` (or a CSV body
  with a header row, ``Content-Type: text/csv``) -> ``{"scores": [...]}``, one per row, in
  order. Concurrent requests share model calls (:mod:`crossrank.serving.batcher`).
* ``GET /healthz``: ``{"status": "ok"}`` once the model is loaded.
* ``GET /v1/metadata``: the manifest (columns and kinds, inputs, output, model, versions).
* ``GET /metrics``: Prometheus text (:mod:`crossrank.serving.metrics`).

A multi-valued column's value is a JSON list of texts and integers (``["Action", "Drama"]``) or
one text joined by the field's separator (``"Action|Drama"``); in a CSV body, the joined text.

Bad input is the client's error and never stops the server: malformed JSON, a row that is not
an object, a missing column, a non-numeric, NaN or infinite dense value, a categorical value
that is neither text nor an integer, a multi-valued value that is not a list of texts and
integers (or a text), a list over 10,000 elements, more rows than ``max_request_rows``: HTTP
400; a body over
``max_body_bytes``: 413. The answer is ``{"error": {"kind", "row", "column", "message"}}``. An
unseen categorical value is not an error. SIGTERM (or Ctrl-C) stops taking connections and
finishes the requests in flight before the process exits with status 0.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossrank.data.multi_valued import as_text_lists
from crossrank.serving.batcher import Batcher
from crossrank.serving.config import ServeConfig
from crossrank.serving.metrics import CONTENT_TYPE, Metrics
from crossrank.serving.rows import BadRowsError, from_csv, from_records, typed_columns
from crossrank.serving.scorer import Scorer

__all__ = ["build_app", "serve"]


class _TooLarge(Exception):
    """The request body is over the size limit (answered 413)."""


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes, before reading it when its
    length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, error: BadRowsError) -> JSONResponse:
    return JSONResponse({"error": error.to_dict()}, status_code=status)


def _json_rows(body: bytes) -> Any:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(
            err, json.JSONDecodeError) else ""
        raise BadRowsError("malformed_json", f"the body is not valid JSON{where}") from None
    if type(payload) is not dict or "rows" not in payload:
        raise BadRowsError("malformed_json", 'the body must be a JSON object {"rows": [...]}')
    return payload["rows"]


def build_app(export_dir: str | Path, config: ServeConfig | None = None) -> Starlette:
    """The ASGI app serving ``export_dir`` (an ONNX export) as configured."""
    cfg = config or ServeConfig()
    scorer = Scorer(export_dir, threads=cfg.threads)
    metrics = Metrics()
    batcher = Batcher(scorer, max_batch_rows=cfg.max_batch_rows, max_wait_ms=cfg.max_wait_ms,
                      metrics=metrics)
    metadata = scorer.manifest.to_dict()
    schema = scorer.schema

    async def score(request: Request) -> Response:
        start = time.perf_counter()
        metrics.in_flight += 1
        try:
            status, response, rows, kind = await _score(request)
        finally:
            metrics.in_flight -= 1
        metrics.request("/v1/score", status, time.perf_counter() - start, rows=rows, error=kind)
        return response

    async def _score(request: Request) -> tuple[int, Response, int, str | None]:
        try:
            with batcher.arriving():
                columns, n = await _parse(request)
            scores = await batcher.score(columns, n) if n else np.zeros(0)
        except _TooLarge:
            error = BadRowsError("body_too_large", f"the body is larger than "
                                 f"{cfg.max_body_bytes} bytes")
            return 413, _error(413, error), 0, error.kind
        except BadRowsError as error:
            return 400, _error(400, error), 0, error.kind
        return 200, JSONResponse({"scores": scores.tolist()}), n, None

    async def _parse(request: Request) -> tuple[dict[str, pa.Array], int]:
        """The request's feature columns and row count; raises BadRowsError or _TooLarge."""
        body = await _body(request, cfg.max_body_bytes)
        if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
            columns = from_csv(body, schema)
            n = len(next(iter(columns.values())))
            typed, problems = typed_columns(columns, schema, n)
            if problems is not None:
                raise problems.errors[0]
            columns = {name: typed.column(name).combine_chunks() for name in columns}
            for spec in schema.multi_valued:  # as records give them, so requests concatenate
                columns[spec.name] = as_text_lists(columns[spec.name], spec.separator)
        else:
            rows = _json_rows(body)
            if isinstance(rows, list) and len(rows) > cfg.max_request_rows:
                raise BadRowsError("too_many_rows", f"{len(rows)} rows, more than the "
                                   f"limit of {cfg.max_request_rows} per request")
            columns, n = from_records(rows, schema), len(rows)
        if n > cfg.max_request_rows:
            raise BadRowsError("too_many_rows", f"{n} rows, more than the limit of "
                               f"{cfg.max_request_rows} per request")
        return columns, n

    async def healthz(request: Request) -> Response:
        metrics.request("/healthz", 200)
        return JSONResponse({"status": "ok"})

    async def metadata_route(request: Request) -> Response:
        metrics.request("/v1/metadata", 200)
        return JSONResponse(metadata)

    async def metrics_route(request: Request) -> Response:
        metrics.request("/metrics", 200)
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    return Starlette(routes=[Route("/v1/score", score, methods=["POST"]),
                             Route("/healthz", healthz), Route("/v1/metadata", metadata_route),
                             Route("/metrics", metrics_route)], lifespan=lifespan)


def serve(export_dir: str | Path, config: ServeConfig | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns 0 once in-flight requests are done."""
    import signal
    import threading
    from collections.abc import Iterator

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own stops on these too, then raises the signal again when done, so the
            # process dies of it; a stop asked for and finished cleanly is a success (exit 0)
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    cfg = config or ServeConfig()
    app = build_app(export_dir, cfg)
    server = Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning",
                                   access_log=False, lifespan="on"))
    print(f"serving {export_dir} on http://{cfg.host}:{cfg.port} (POST /v1/score)", flush=True)
    server.run()
    return 0
