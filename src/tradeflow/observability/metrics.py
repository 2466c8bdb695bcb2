"""Prometheus metrics, correct across several processes.

When `PROMETHEUS_MULTIPROC_DIR` is set (the CLI sets it under
`$TRADEFLOW_HOME/metrics` before any worker process starts), every process
writes its samples to files there and `/metrics` aggregates them; gauges use
`livesum` so a stopped process's connections stop counting.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "tradeflow_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "tradeflow_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
DB_POOL_CONNECTIONS = Gauge(
    "tradeflow_db_pool_connections",
    "Open database connections held by the pool.",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "tradeflow_db_pool_checked_out",
    "Database connections currently checked out of the pool.",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter(
    "tradeflow_rate_limited_total", "Requests refused by a rate limit.", ["scope"]
)
SECURITY_EVENTS = Counter(
    "tradeflow_security_events_total", "Security events recorded, by kind.", ["kind"]
)


def _registry() -> CollectorRegistry:
    """This process's registry, or one adding up every process's files in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition for `/metrics`: this process, or every process in multiprocess mode."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve `/metrics` from a process without an HTTP API (`tradeflow worker`), on a thread.

    Returns the function that stops it.
    """
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=_registry())

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


def mark_process_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
