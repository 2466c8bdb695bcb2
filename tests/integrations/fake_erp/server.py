"""Start and stop the fake ERP as a separate process on 127.0.0.1 (a test fixture's helper)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeErp:
    base_url: str
    token: str
    process: subprocess.Popen[bytes]

    # -- test-side helpers, never flaky -----------------------------------------------------
    def control(self, **settings: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/_control", json=settings, timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def calm(self) -> None:
        self.control(
            rate_limit_rate=0.0, error_rate=0.0, timeout_rate=0.0, user_edit_rate=0.0, seed=None
        )

    def dump(self, collection: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/_dump/{collection}", timeout=30)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = httpx.get(f"{self.base_url}/_stats", timeout=10).json()
        return data

    def user_edit(self, collection: str, rid: str, **fields: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/_edit/{collection}/{rid}", json={"fields": fields}, timeout=10
        )
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_fake_erp(folder: Path, *, token: str = "erp-test-token") -> FakeErp:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_erp",
            "--port",
            str(port),
            "--db",
            str(folder / "erp.sqlite3"),
            "--token",
            token,
        ],
        env=env,
        cwd=str(HERE.parent),
    )
    erp = FakeErp(f"http://127.0.0.1:{port}", token, process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fake ERP exited with {process.returncode}")
        try:
            if httpx.get(f"{erp.base_url}/health", timeout=1).status_code == 200:
                return erp
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            erp.stop()
            raise RuntimeError("fake ERP did not become ready in 30 s")
        time.sleep(0.05)
