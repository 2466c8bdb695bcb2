"""Running `tradeflow up --demo` as a real process for the end-to-end tests: start it with a
clean environment, await /readyz, stop it with SIGTERM, and after a failure make sure neither
it nor its embedded PostgreSQL is left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class Instance:
    proc: subprocess.Popen[bytes]
    home: Path
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pgdata(self) -> Path:
        return (self.home / "pgdata").resolve()

    @property
    def credentials_file(self) -> Path:
        return self.home / "demo-credentials.json"

    def credentials(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.credentials_file.read_text())
        return data

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without anything that configures Tradeflow."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADEFLOW_", "PROMETHEUS_", "OTEL_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }


def start(home: Path, port: int, *, env: dict[str, str] | None = None) -> Instance:
    """`tradeflow up --demo` on the embedded server under `home`, configured by nothing from
    this process's environment but `env`."""
    clean = clean_env()
    clean.update(env or {})
    clean["TRADEFLOW_HOME"] = str(home)  # and no DATABASE_URL: the embedded server
    log = home.parent / f"{home.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeflow", "up", "--demo", "--port", str(port)],
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Instance(proc, home, port, log)


def await_ready(instance: Instance, deadline: float) -> None:
    while time.monotonic() < deadline:
        code = instance.proc.poll()
        assert code is None, f"exited with {code} before ready:\n{instance.output()}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(instance.base_url + "/readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"/readyz not 200 in time:\n{instance.output()}")


def stop(instance: Instance) -> int:
    instance.proc.send_signal(signal.SIGTERM)
    try:
        return instance.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not stop within {STOP_TIMEOUT}s of SIGTERM:\n{instance.output()}")


def postgres_serving(pgdata: Path) -> list[psutil.Process]:
    """PostgreSQL server processes whose data directory is `pgdata`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("status") == psutil.STATUS_ZOMBIE:
            continue  # exited; only waiting for a parent to collect its status
        if any("postgres" in part for part in cmdline[:1]) and str(pgdata) in cmdline:
            found.append(process)
    return found


def kill_leftovers(instance: Instance) -> None:
    """After a failure: the process, and any PostgreSQL still serving its data."""
    if instance.proc.poll() is None:
        instance.proc.kill()
        instance.proc.wait(10)
    servers = postgres_serving(instance.pgdata)
    for process in servers:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
    _, alive = psutil.wait_procs(servers, timeout=30)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
