"""Tenant B's CommerceML connector and one of its exchanges, for the tenant-isolation walk."""

from __future__ import annotations

import uuid
from typing import Any

from tradeflow.connectors.commerceml.models import Exchange
from tradeflow.integrations import service
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow


async def _commerceml(ctx: Any) -> dict[str, str]:
    known = ctx.recalled("commerceml.params")
    if known is not None:
        return dict(known)
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        instance = await service.create_instance(
            s,
            tenant,
            keyring=ctx.keyring,
            kind="commerceml",
            name=f"1c-{uuid.uuid4().hex[:6]}",
            config={"login": "1c", "password": "b-secret"},
        )
        exchange = Exchange(
            id=uuid7(),
            tenant_id=tenant,
            connector_id=instance.id,
            exchange_type="catalog",
            mode="import",
            source="cli",
            status="success",
            counts={},
            problems=[],
            orders=[],
            size_bytes=0,
            started_at=utcnow(),
        )
        s.add(exchange)
        await s.commit()
    params = {"connector_id": str(instance.id), "exchange_id": str(exchange.id)}
    ctx.remember("commerceml.params", params)
    return params


PREFIX = "/v1/connectors/{connector_id}/commerceml"
FACTORIES = {
    f"{PREFIX}/exchange": _commerceml,
    f"{PREFIX}/exchanges": _commerceml,
    f"{PREFIX}/exchanges/{{exchange_id}}": _commerceml,
}
