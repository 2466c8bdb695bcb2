"""Tenant B's customers, groups and buyers for the tenant-isolation walk
(tests/test_tenant_isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from customers.support import PASSWORD
from tradeflow.customers import service
from tradeflow.customers.schemas import BuyerIn, CustomerGroupIn, CustomerIn


async def _world(ctx: Any) -> dict[str, str]:
    known = ctx.recalled("customers_b")
    if known is not None:
        return dict(known)
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        group = await service.create_group(
            s, tenant, CustomerGroupIn(name=f"B group {uuid.uuid4().hex[:6]}")
        )
        customer = await service.create_customer(
            s, tenant, CustomerIn(name="B's customer", currency="EUR", group_id=group.id)
        )
        buyer = await service.create_buyer(
            s,
            tenant,
            customer.id,
            BuyerIn.model_validate(
                {"email": f"b-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
            ),
            actor=None,
        )
        await s.commit()
    values = {
        "customer_id": str(customer.id),
        "group_id": str(group.id),
        "user_id": str(buyer.user_id),
    }
    ctx.remember("customers_b", values)
    return values


async def _customer(ctx: Any) -> dict[str, str]:
    return {"customer_id": (await _world(ctx))["customer_id"]}


async def _group(ctx: Any) -> dict[str, str]:
    return {"group_id": (await _world(ctx))["group_id"]}


async def _buyer(ctx: Any) -> dict[str, str]:
    world = await _world(ctx)
    return {"customer_id": world["customer_id"], "user_id": world["user_id"]}


# Keyed by path template: `customer_id` and `user_id` also name other contexts' objects.
FACTORIES = {
    "/v1/customers/{customer_id}": _customer,
    "/v1/customers/{customer_id}/buyers": _customer,
    "/v1/customers/{customer_id}/buyers/{user_id}": _buyer,
    "group_id": _group,
}


async def check_untouched(ctx: Any, client: AsyncClient) -> None:
    """After the walk: B's customer, group and buyer are as they were."""
    world = ctx.recalled("customers_b")
    if not world:
        return
    async with ctx.db.tenant_session(ctx.tenant_b.id) as s:
        customer = await service.get_customer(s, uuid.UUID(world["customer_id"]))
        buyer = await service.get_buyer(s, uuid.UUID(world["user_id"]))
    assert customer.name == "B's customer", "A renamed B's customer"
    assert customer.group_id == uuid.UUID(world["group_id"]), "A moved or deleted B's group"
    assert buyer is not None
    assert buyer.spending_limit_minor is None, "A changed B's buyer"
