"""`tradeflow api --workers 2` as a real process tree: metrics add up across workers, logs are
JSON lines, console traces are printed, and SIGTERM stops everything."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

# Generous: starting two workers imports the whole app twice, and CI has two cores.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without any Tradeflow or Prometheus settings, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADEFLOW_", "PROMETHEUS_", "OTEL_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(extra)
    return env


@dataclass
class ApiProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    home: Path
    stdout: Path
    stderr: Path

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.stderr.read_text().splitlines():
            if raw.strip():
                parsed = json.loads(raw)  # a line that is not JSON fails the test here
                assert isinstance(parsed, dict), raw
                lines.append(parsed)
        return lines

    def spans(self) -> list[dict[str, object]]:
        """The console exporter prints one indented JSON document per finished span."""
        text, out, pos = self.stdout.read_text(), [], 0
        decoder = json.JSONDecoder()
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                return out
            span, pos = decoder.raw_decode(text, pos)
            out.append(span)

    def diagnostics(self) -> str:
        return f"stderr:\n{self.stderr.read_text()[-4000:]}"


def kill_everything_under(proc: subprocess.Popen[bytes], home: Path) -> None:
    """Kill the process and anything it started, even children it orphaned, found by the
    unique home folder in their environment (SIGKILL on a uvicorn parent orphans workers)."""
    doomed = []
    for candidate in psutil.process_iter():
        try:
            if candidate.environ().get("TRADEFLOW_HOME") == str(home):
                doomed.append(candidate)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for process in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    psutil.wait_procs(doomed, timeout=10)


def await_http_ok(api: ApiProcess, path: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert api.proc.poll() is None, f"exited with {api.proc.returncode}\n{api.diagnostics()}"
        try:
            if httpx.get(api.base_url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{path} never answered 200\n{api.diagnostics()}")


@pytest.fixture
def api_two_workers(database_url: str) -> Iterator[ApiProcess]:
    with tempfile.TemporaryDirectory(prefix="tradeflow-mp-") as tmp:
        home = Path(tmp) / "home"
        port = free_port()
        stdout, stderr = Path(tmp) / "stdout", Path(tmp) / "stderr"
        env = clean_env(
            DATABASE_URL=database_url,
            TRADEFLOW_HOME=str(home),
            TRADEFLOW_MASTER_KEY="m1:" + base64.b64encode(os.urandom(32)).decode(),
            TRADEFLOW_LOG_FORMAT="json",
            TRADEFLOW_OTEL_EXPORTER="console",
        )
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tradeflow", "api", "--workers", "2", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=err,
            )
        api = ApiProcess(proc, f"http://127.0.0.1:{port}", home, stdout, stderr)
        try:
            await_http_ok(api, "/readyz", time.monotonic() + START_TIMEOUT)
            yield api
        finally:
            kill_everything_under(proc, home)


def per_worker_counts(metrics_dir: Path, route: str) -> dict[int, float]:
    """Requests to `route` recorded by each worker process, read from its own counter file."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        with tempfile.TemporaryDirectory() as alone:
            Path(alone, path.name).write_bytes(path.read_bytes())
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            counts[pid] = request_total(generate_latest(registry).decode(), route)
    return counts


def request_total(exposition: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        if family.name == "tradeflow_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("route") == route:
                    total += sample.value
    return total


def sample_value(exposition: str, name: str) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def fresh_get(url: str) -> httpx.Response:
    # A new connection per request, so the kernel can hand it to either worker.
    with httpx.Client(timeout=10) as client:
        return client.get(url, headers={"Connection": "close"})


def test_metrics_aggregate_over_workers_and_shutdown_is_clean(api_two_workers: ApiProcess) -> None:
    api = api_two_workers
    metrics_dir = api.home / "metrics"
    sent = 0
    deadline = time.monotonic() + START_TIMEOUT
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Until both workers have served /healthz (the second may still be starting), bounded.
        while time.monotonic() < deadline:
            responses = list(pool.map(fresh_get, [api.base_url + "/healthz"] * 16))
            assert all(r.status_code == 200 for r in responses)
            sent += len(responses)
            counts = per_worker_counts(metrics_dir, "/healthz")
            if len([c for c in counts.values() if c > 0]) >= 2:
                break
        else:
            pytest.fail(f"one worker served everything: {counts}\n{api.diagnostics()}")
        for _ in range(3):
            assert fresh_get(api.base_url + "/readyz").status_code == 200

    children = psutil.Process(api.proc.pid).children(recursive=True)
    workers = {p.pid for p in children}
    # Counting happens just after the response is sent: await the last increments.
    while sum(per_worker_counts(metrics_dir, "/healthz").values()) < sent:
        assert time.monotonic() < deadline, "request counts never reached what was sent"
        time.sleep(0.05)
    counts = per_worker_counts(metrics_dir, "/healthz")
    assert sum(counts.values()) == sent
    assert set(counts) <= workers, (counts, workers)

    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(6):
        exposition = fresh_get(api.base_url + "/metrics").text
        assert request_total(exposition, "/healthz") == sent
        assert "tradeflow_http_request_duration_seconds_bucket" in exposition
        connections = sample_value(exposition, "tradeflow_db_pool_connections")
        assert connections is not None, exposition
        assert connections >= 1, exposition
        assert sample_value(exposition, "tradeflow_db_pool_checked_out") is not None

    traced = fresh_get(api.base_url + "/openapi.json")
    assert traced.status_code == 200
    traced_request_id = traced.headers["x-request-id"]

    api.proc.send_signal(signal.SIGTERM)
    try:
        code = api.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not stop within {STOP_TIMEOUT}s\n{api.diagnostics()}")
    assert code == 0, api.diagnostics()
    # The workers and multiprocessing's resource tracker follow their parent out.
    deadline = time.monotonic() + STOP_TIMEOUT
    while left := [p for p in children if still_running(p)]:
        assert time.monotonic() < deadline, f"outlived their parent: {left}"
        time.sleep(0.05)
    # Stopped workers withdrew their live gauges.
    assert list(metrics_dir.glob("gauge_livesum_*.db")) == []

    # Logs: every line of all three processes is one JSON object.
    lines = api.log_lines()
    access = [line for line in lines if line.get("event") == "http_request"]
    assert len(access) >= sent
    assert all(line["request_id"] for line in access)
    openapi_line = next(line for line in access if line["request_id"] == traced_request_id)
    assert openapi_line["route"] == "/openapi.json"

    # Traces: the console exporter printed the request's server span, in the logged trace.
    spans = api.spans()
    server = [s for s in spans if s.get("name") == "GET /openapi.json"]
    assert len(server) == 1, [s.get("name") for s in spans]
    context = server[0]["context"]
    assert isinstance(context, dict)
    assert context["trace_id"] == "0x" + str(openapi_line["trace_id"])
    assert not [s for s in spans if str(s.get("name", "")).startswith("GET /healthz")]
