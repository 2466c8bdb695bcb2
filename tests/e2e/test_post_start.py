"""The post-start hook of `tradeflow up` (`runtime.after_ready`), against the real app served
by uvicorn on 127.0.0.1: the step runs once `/readyz` answers; a failing step is logged and
the platform keeps serving; a step still running when the stop comes is cancelled."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tradeflow.config import Settings
from tradeflow.runtime import after_ready, local_api_url, uvicorn_task

pytestmark = pytest.mark.slow

BOUND = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(condition: Any, what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def test_a_failing_step_is_logged_and_the_platform_keeps_serving(
    settings: Settings, shared_app: Any
) -> None:
    here = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    calls: list[int] = []

    async def step() -> None:
        # Runs only once the API answers: the readiness probe passed.
        async with httpx.AsyncClient() as client:
            calls.append((await client.get(local_api_url(here) + "/readyz")).status_code)
        raise RuntimeError("the demo could not book its orders")

    stop = asyncio.Event()
    with capture_logs() as logs:
        serve = asyncio.create_task(uvicorn_task(shared_app, here, here.host, here.port)(stop))
        hook = asyncio.create_task(after_ready(here, "demo_books", step)(stop))
        try:
            await until(
                lambda: any(e["event"] == "demo_books_failed" for e in logs), "no failure logged"
            )
            failed = next(e for e in logs if e["event"] == "demo_books_failed")
            assert failed["error"] == "the demo could not book its orders"
            assert failed["log_level"] == "error"
            assert calls == [200]
            # Neither task ended: the platform still serves.
            assert not hook.done()
            assert not serve.done()
            async with httpx.AsyncClient() as client:
                assert (await client.get(local_api_url(here) + "/readyz")).status_code == 200
        finally:
            stop.set()
            async with asyncio.timeout(BOUND):
                await asyncio.gather(serve, hook)


async def test_a_step_still_running_at_stop_is_cancelled(
    settings: Settings, shared_app: Any
) -> None:
    here = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def step() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stop = asyncio.Event()
    serve = asyncio.create_task(uvicorn_task(shared_app, here, here.host, here.port)(stop))
    hook = asyncio.create_task(after_ready(here, "demo_books", step)(stop))
    try:
        async with asyncio.timeout(BOUND):
            await started.wait()
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await asyncio.gather(serve, hook)
    assert cancelled.is_set()
    assert hook.exception() is None
