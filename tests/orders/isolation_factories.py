"""Tenant B's orders, invoices and tax rates for the tenant-isolation walk
(tests/test_tenant_isolation.py)."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

from orders.factories import make_world
from tradeflow.identity.principal import ALL_SCOPES, Principal
from tradeflow.orders import service
from tradeflow.orders.schemas import OrderCreate


async def _world(ctx: Any) -> dict[str, str]:
    known = ctx.recalled("orders_b")
    if known is not None:
        return dict(known)
    tenant = ctx.tenant_b.id
    world = await make_world(ctx.db, tenant_id=tenant)
    principal = Principal(kind="api_key", id=tenant, tenant_id=tenant, scopes=ALL_SCOPES)
    async with ctx.db.tenant_session(tenant) as s:
        body = OrderCreate.model_validate(
            {
                "customer_id": str(world.customer_id),
                "currency": "EUR",
                "lines": [{"sku": "BOLT-1", "quantity": 1}],
            }
        )
        invoiced = await service.place_order(s, principal, body)
        invoiced = await service.transition(s, principal, invoiced.id, "confirm", if_match="*")
        placed = await service.place_order(s, principal, body)
        rate = await s.execute(text("SELECT id FROM tax_rates WHERE tenant_id = :t"), {"t": tenant})
        await s.commit()
    values = {
        "order_id": str(placed.id),
        "invoice_id": str(invoiced.invoice_id),
        "tax_rate_id": str(rate.scalar_one()),
    }
    ctx.remember("orders_b", values)
    return values


async def _order(ctx: Any) -> dict[str, str]:
    return {"order_id": (await _world(ctx))["order_id"]}


async def _invoice(ctx: Any) -> dict[str, str]:
    return {"invoice_id": (await _world(ctx))["invoice_id"]}


async def _tax_rate(ctx: Any) -> dict[str, str]:
    return {"tax_rate_id": (await _world(ctx))["tax_rate_id"]}


FACTORIES = {"order_id": _order, "invoice_id": _invoice, "tax_rate_id": _tax_rate}


async def check_untouched(ctx: Any, client: AsyncClient) -> None:
    values = ctx.recalled("orders_b")
    if values is None:
        return
    async with ctx.db.system_session() as s:
        row = (
            await s.execute(
                text("SELECT status, version, notes FROM orders WHERE id = :id"),
                {"id": values["order_id"]},
            )
        ).one()
        rate = (
            await s.execute(
                text("SELECT name, active FROM tax_rates WHERE id = :id"),
                {"id": values["tax_rate_id"]},
            )
        ).one()
    assert tuple(row) == ("placed", 1, None), "tenant A changed tenant B's order"
    assert tuple(rate) == ("Standard", True), "tenant A changed tenant B's tax rate"
