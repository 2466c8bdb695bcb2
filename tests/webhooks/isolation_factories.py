"""Tenant B's webhook endpoint, event and delivery for the tenant-isolation walk
(tests/test_tenant_isolation.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tradeflow.config import load_settings
from tradeflow.events.engine import dispatch_batch
from tradeflow.webhooks import service


async def _world(ctx: Any) -> dict[str, str]:
    known = ctx.recalled("webhooks_b")
    if known is not None:
        return dict(known)
    tenant = ctx.tenant_b.id
    settings = load_settings(webhooks_allow_private=True)
    async with ctx.db.tenant_session(tenant) as s:
        view, _ = await service.create_endpoint(
            s, tenant, settings=settings, keyring=ctx.keyring, url="https://b.example.com/hook"
        )
        event = await service.send_test(s, tenant, view.endpoint.id)
        await s.commit()
    async with ctx.db.system_session() as s:
        await dispatch_batch(s, limit=10_000)
        await s.commit()
        delivery_id = (
            await s.execute(text("SELECT id FROM deliveries WHERE event_id = :e"), {"e": event.id})
        ).scalar_one()
    world = {
        "endpoint_id": str(view.endpoint.id),
        "event_id": str(event.id),
        "delivery_id": str(delivery_id),
    }
    ctx.remember("webhooks_b", world)
    return dict(world)


async def _endpoint(ctx: Any) -> dict[str, str]:
    return {"endpoint_id": (await _world(ctx))["endpoint_id"]}


async def _event(ctx: Any) -> dict[str, str]:
    return {"event_id": (await _world(ctx))["event_id"]}


async def _delivery(ctx: Any) -> dict[str, str]:
    return {"delivery_id": (await _world(ctx))["delivery_id"]}


_ENDPOINT = "/v1/webhook-endpoints/{endpoint_id}"
FACTORIES = {
    _ENDPOINT: _endpoint,
    **{
        f"{_ENDPOINT}/{action}": _endpoint
        for action in ("test", "pause", "resume", "recover", "rotate-secret")
    },
    "/v1/events/{event_id}": _event,
    "/v1/deliveries/{delivery_id}": _delivery,
    "/v1/deliveries/{delivery_id}/redeliver": _delivery,
}
