"""`tradeflow worker` has no HTTP API, so it serves `/metrics` on a port of its own."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gauge(exposition: str, name: str) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_worker_serves_its_own_metrics_and_stops_on_sigterm(database_url: str) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tradeflow-worker-") as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TRADEFLOW_", "PROMETHEUS_", "OTEL_"))
            and k not in {"DATABASE_URL", "REDIS_URL"}
        }
        env.update(
            DATABASE_URL=database_url,
            TRADEFLOW_HOME=str(Path(tmp) / "home"),
            TRADEFLOW_MASTER_KEY="w1:" + base64.b64encode(os.urandom(32)).decode(),
            TRADEFLOW_WORKER_METRICS_PORT=str(port),
            # Only the process and its metrics are under test: leave the shared
            # test database's scheduled jobs alone.
            TRADEFLOW_SCHEDULER_ENABLED="false",
        )
        log = Path(tmp) / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tradeflow", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + TIMEOUT
            connections = None
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    # Connected to the database: the pool gauge counts its connections.
                    connections = gauge(r.text, "tradeflow_db_pool_connections")
                    if connections:
                        break
                time.sleep(0.1)
            assert connections, f"no pooled connection reported\n{log.read_text()}"
            assert "tradeflow_delivery_backlog" in r.text

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0, log.read_text()
            assert '"event": "worker_stopped"' in log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
