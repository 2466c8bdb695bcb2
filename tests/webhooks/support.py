"""Webhook test helpers: endpoints created through the service, widgets published."""

from __future__ import annotations

import uuid
from typing import Any

from events.test_outbox import WidgetCreated
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import publish
from tradeflow.kit.keyring import Keyring
from tradeflow.webhooks import service


async def make_endpoint(
    db: Database, tenant: uuid.UUID, settings: Settings, keyring: Keyring, url: str, **kw: Any
) -> tuple[uuid.UUID, str]:
    async with db.tenant_session(tenant) as s:
        view, secret = await service.create_endpoint(
            s, tenant, settings=settings, keyring=keyring, url=url, **kw
        )
        await s.commit()
    return view.endpoint.id, secret


async def publish_widgets(
    db: Database, tenant: uuid.UUID, *, aggregates: int = 1, per_aggregate: int = 1
) -> list[uuid.UUID]:
    ids = []
    async with db.tenant_session(tenant) as s:
        for _ in range(aggregates):
            wid = uuid.uuid4()
            for n in range(per_aggregate):
                e = await publish(
                    s,
                    WidgetCreated(widget_id=wid, name=f"v{n}"),
                    tenant_id=tenant,
                    aggregate_id=wid,
                )
                ids.append(e.id)
        await s.commit()
    return ids
