"""Helpers for the payments and sandbox tests: the sandbox process, local HTTP servers, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tradeflow.db import Database
from tradeflow.sandbox.process import SandboxProcess
from tradeflow.sandbox.store import ensure_database


@contextlib.contextmanager
def sandbox_process(server_url: str, worker_id: str) -> Iterator[SandboxProcess]:
    """The sandbox processor as a child process, with its own database on the test server."""
    import psycopg

    name = f"tfsandbox_{worker_id}_{uuid.uuid4().hex[:8]}"
    url = ensure_database(server_url, name)
    process = SandboxProcess(url).start()
    try:
        yield process
    finally:
        process.stop()
        u = make_url(server_url)
        host = u.query.get("host", u.host) if u.query else u.host
        with psycopg.connect(
            dbname=u.database or "postgres",
            user=u.username,
            password=u.password,
            host=host if isinstance(host, str) else None,
            port=u.port,
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free 127.0.0.1 port in this event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: _started(server, task))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return bool(server.started)


@dataclass
class Recorder:
    """A webhook receiver that records every request and answers `status`."""

    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            self.requests.append((dict(request.headers), await request.body()))
            return JSONResponse({"ok": self.status < 300}, status_code=self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Await until `check()` returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.system_session() as s:
        return list((await s.execute(text(sql), params)).all())


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.system_session() as s:
        return (await s.execute(text(sql), params)).scalar()
