"""The options of ``crossrank serve``: one frozen config, from which the flags are generated."""

from __future__ import annotations

from dataclasses import dataclass

from crossrank.errors import ConfigError
from crossrank.options import option

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How the scoring server listens, batches and limits requests.

    Example:
        >>> ServeConfig(port=9000).max_batch_rows
        4096
        >>> ServeConfig(max_wait_ms=-1)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: max_wait_ms must be a number >= 0, got -1
    """

    host: str = option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    port: int = option(8080, help="TCP port to listen on")
    max_batch_rows: int = option(4096, help="most rows of concurrent requests scored in one "
                                 "model call (a larger request is scored alone)")
    max_wait_ms: float = option(1.0, help="longest a request waits for others to share its "
                                "model call, in milliseconds (only while others are being "
                                "received: a lone request is scored at once)")
    max_request_rows: int = option(10000, help="most rows one request may send (more: HTTP "
                                   "400)")
    max_body_bytes: int = option(16 * 1024 * 1024, help="largest request body in bytes (more: "
                                 "HTTP 413)")
    threads: int | None = option(None, help="ONNX Runtime intra-op threads (none: one per "
                                 "core)")

    def __post_init__(self) -> None:
        for name, low in (("port", 0), ("max_batch_rows", 1), ("max_request_rows", 1),
                          ("max_body_bytes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.port > 65535:
            raise ConfigError(f"port must be at most 65535, got {self.port}")
        if isinstance(self.max_wait_ms, bool) or not isinstance(self.max_wait_ms, int | float) \
                or not self.max_wait_ms >= 0:
            raise ConfigError(f"max_wait_ms must be a number >= 0, got {self.max_wait_ms!r}")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1 or none, got {self.threads!r}")
