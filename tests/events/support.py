"""Helpers shared by the events and webhooks tests: tenants, an in-process worker, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import text

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.worker import DeliveryWorker
from tradeflow.kit.keyring import Keyring


async def make_tenant(db: Database, *, name: str = "Acme") -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with db.system_session() as s:
        await s.execute(
            text("INSERT INTO tenants (id, name, slug) VALUES (:id, :name, :slug)"),
            {"id": tenant_id, "name": name, "slug": f"t-{tenant_id.hex[:12]}"},
        )
        await s.commit()
    return tenant_id


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Await until `check()` returns a truthy value; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.system_session() as s:
        return (await s.execute(text(sql), params)).scalar()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, db: Database, keyring: Keyring, **overrides: Any
) -> AsyncIterator[DeliveryWorker]:
    worker_settings = settings.model_copy(update=overrides) if overrides else settings
    worker = DeliveryWorker(worker_settings, db, keyring)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


FAST = {
    "delivery_poll_seconds": 0.1,
    "webhooks_timeout_seconds": 2.0,
    "delivery_lease_seconds": 8.0,
    "delivery_shutdown_seconds": 3.0,
    "webhooks_retry_schedule": [0, 0, 0],
    "handler_retry_schedule": [0, 0, 0],
    "delivery_retry_jitter": 0.0,
    "scheduler_enabled": False,
}
