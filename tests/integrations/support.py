"""Helpers for the integrations (and connectors) tests: tenants, connector instances, waiting,
models against migrations."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import text

from integrations.fake_erp.server import FakeErp
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.worker import DeliveryWorker
from tradeflow.integrations import service
from tradeflow.integrations.models import ConnectorInstance
from tradeflow.kit.keyring import Keyring

FAST = {
    "delivery_poll_seconds": 0.1,
    "webhooks_timeout_seconds": 3.0,
    "delivery_lease_seconds": 10.0,
    "delivery_shutdown_seconds": 3.0,
    "webhooks_retry_schedule": [0, 0, 0.5, 0.5, 1, 1, 1, 2, 2, 2, 2, 2],
    "handler_retry_schedule": [0, 0, 0, 0, 0],
    "delivery_retry_jitter": 0.0,
    "breaker_failure_threshold": 1000,
    "scheduler_enabled": False,
}


async def make_tenant(db: Database) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with db.system_session() as s:
        await s.execute(
            text("INSERT INTO tenants (id, name, slug) VALUES (:id, :name, :slug)"),
            {"id": tenant_id, "name": "Seller", "slug": f"t-{tenant_id.hex[:12]}"},
        )
        await s.commit()
    return tenant_id


def erp_config(erp: FakeErp, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": f"{erp.base_url}/api/v1",
        "auth": "bearer",
        "token": erp.token,
        "timeout_seconds": 1.0,
        "settle_seconds": 2.0,
        **extra,
    }


async def make_connector(
    db: Database,
    tenant_id: uuid.UUID,
    keyring: Keyring,
    *,
    kind: str,
    config: dict[str, Any],
    name: str | None = None,
) -> ConnectorInstance:
    async with db.tenant_session(tenant_id) as s:
        instance = await service.create_instance(
            s,
            tenant_id,
            keyring=keyring,
            kind=kind,
            name=name or f"{kind}-{uuid.uuid4().hex[:6]}",
            config=config,
            allow_private=True,  # the fake ERP listens on 127.0.0.1
        )
        await s.commit()
    return instance


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, db: Database, keyring: Keyring
) -> AsyncIterator[DeliveryWorker]:
    """A delivery worker (handlers, connectors, webhooks) in this event loop."""
    worker = DeliveryWorker(settings, db, keyring)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.system_session() as s:
        return (await s.execute(text(sql), params)).scalar()


async def undelivered(db: Database, tenant_id: uuid.UUID) -> int:
    """The tenant's deliveries (webhooks, handlers, connectors) not yet delivered."""
    return int(
        await scalar(
            db,
            "SELECT count(*) FROM deliveries WHERE tenant_id = :t AND status <> 'delivered'",
            t=tenant_id,
        )
    )
