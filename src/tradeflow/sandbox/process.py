"""Start the sandbox as a child process and wait until it listens (tests, scripts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


@dataclass
class SandboxProcess:
    """`with SandboxProcess(db_url) as sandbox:` → `sandbox.api_url`, `sandbox.control_url`."""

    database_url: str
    host: str = "127.0.0.1"
    port: int = 0
    control_port: int = 0
    start_timeout: float = 30.0
    api_url: str = field(init=False, default="")
    control_url: str = field(init=False, default="")
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _dir: tempfile.TemporaryDirectory[str] | None = field(init=False, default=None)

    def start(self) -> SandboxProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="tradeflow-sandbox-")
        ready = Path(self._dir.name) / "ready.json"
        log = (Path(self._dir.name) / "sandbox.log").open("wb")
        self._proc = subprocess.Popen(  # noqa: S603 — our own interpreter and module
            [
                sys.executable,
                "-m",
                "tradeflow.sandbox",
                "--database-url",
                self.database_url,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--control-port",
                str(self.control_port),
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not ready.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"sandbox exited at start:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"sandbox did not start in {self.start_timeout}s:\n{self.output()}"
                )
            time.sleep(0.05)
        urls = json.loads(ready.read_text())
        self.api_url, self.control_url = urls["api_url"], urls["control_url"]
        return self

    def output(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "sandbox.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
