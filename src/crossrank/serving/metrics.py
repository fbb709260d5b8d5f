"""The server's counters, written in Prometheus' text exposition format (version 0.0.4).

Small enough to write by hand: counters by label, one gauge and one latency histogram
(cumulative ``_bucket{le=...}`` lines, ``_sum`` and ``_count``).

Example:
    >>> m = Metrics()
    >>> m.request("/v1/score", 200, 0.003, rows=2)
    >>> [line for line in m.text().splitlines() if line.startswith("crossrank_rows")]
    ['crossrank_rows_scored_total 2']
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(**labels: object) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels.items())
    return "{" + inner + "}"


class Metrics:
    """Thread-safe counters of the scoring server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.rows_scored = 0
        self.batches = 0
        self.batch_rows = 0
        self.in_flight = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last: +Inf
        self.latency_sum = 0.0

    def request(self, path: str, code: int, seconds: float | None = None, *, rows: int = 0,
                error: str | None = None) -> None:
        """One answered request; ``seconds`` (score requests) goes into the histogram."""
        with self._lock:
            self.requests[(path, code)] += 1
            self.rows_scored += rows
            if error is not None:
                self.errors[error] += 1
            if seconds is not None:
                self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
                self.latency_sum += seconds

    def batch(self, rows: int) -> None:
        """One model call over ``rows`` rows."""
        with self._lock:
            self.batches += 1
            self.batch_rows += rows

    def text(self) -> str:
        with self._lock:
            out = ["# HELP crossrank_requests_total HTTP requests answered, by path and status.",
                   "# TYPE crossrank_requests_total counter"]
            out += [f"crossrank_requests_total{_labels(path=p, code=c)} {n}"
                    for (p, c), n in sorted(self.requests.items())]
            out += ["# HELP crossrank_errors_total Score requests refused, by kind of error.",
                    "# TYPE crossrank_errors_total counter"]
            out += [f"crossrank_errors_total{_labels(kind=k)} {n}"
                    for k, n in sorted(self.errors.items())]
            out += ["# HELP crossrank_rows_scored_total Rows scored and returned.",
                    "# TYPE crossrank_rows_scored_total counter",
                    f"crossrank_rows_scored_total {self.rows_scored}",
                    "# HELP crossrank_model_calls_total Model calls (micro-batches).",
                    "# TYPE crossrank_model_calls_total counter",
                    f"crossrank_model_calls_total {self.batches}",
                    "# HELP crossrank_model_call_rows_total Rows sent to the model.",
                    "# TYPE crossrank_model_call_rows_total counter",
                    f"crossrank_model_call_rows_total {self.batch_rows}",
                    "# HELP crossrank_requests_in_flight Score requests being answered.",
                    "# TYPE crossrank_requests_in_flight gauge",
                    f"crossrank_requests_in_flight {self.in_flight}",
                    "# HELP crossrank_request_duration_seconds Score request latency.",
                    "# TYPE crossrank_request_duration_seconds histogram"]
            total = 0
            for le, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.buckets, strict=True):
                total += n
                out.append(f"crossrank_request_duration_seconds_bucket{_labels(le=le)} {total}")
            out += [f"crossrank_request_duration_seconds_sum {self.latency_sum:.6f}",
                    f"crossrank_request_duration_seconds_count {total}"]
        return "\n".join(out) + "\n"
