"""Plain factory functions for orders tests: a seller world, buyers, orders, payment facts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import text

from tradeflow.catalog import products
from tradeflow.catalog.schemas import PriceListIn, ProductIn
from tradeflow.customers import service as customers
from tradeflow.customers.schemas import BuyerIn, CustomerIn
from tradeflow.db import Database
from tradeflow.identity import service as identity
from tradeflow.identity.principal import ALL_SCOPES
from tradeflow.identity.repository import IdentityRepository
from tradeflow.orders import taxes
from tradeflow.orders.schemas import TaxRateIn

PASSWORD = "orders-test-password-7781"
PRICES = {"BOLT-1": 1000, "NUT-2": 250, "GEAR-3": 4999}


@dataclass
class World:
    db: Database
    tenant_id: uuid.UUID
    token: str  # a staff API key holding every scope
    customer_id: uuid.UUID
    skus: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_world(
    db: Database,
    *,
    currency: str = "EUR",
    credit_limit_minor: int | None = None,
    tax_rate: Decimal | None = Decimal(20),
    tenant_id: uuid.UUID | None = None,
) -> World:
    """A seller (a new tenant unless `tenant_id` is given) with an all-scopes API key, a
    customer, three SKUs on a base price list and a default 20 % tax rate."""
    suffix = uuid.uuid4().hex[:8]
    async with db.system_session() as s:
        if tenant_id is None:
            tenant = await identity.create_tenant(
                s, name=f"Seller {suffix}", slug=f"seller-{suffix}"
            )
            tenant_id = tenant.id
        key = await identity.create_api_key(
            IdentityRepository(s, tenant_id), name="orders tests", scopes=ALL_SCOPES, actor=None
        )
        await s.commit()
    async with db.tenant_session(tenant_id) as s:
        customer = await customers.create_customer(
            s,
            tenant_id,
            CustomerIn(
                name="Größhandel Ελλάς",
                currency=currency,
                payment_terms_days=30,
                credit_limit_minor=credit_limit_minor,
            ),
        )
        for code in PRICES:
            await products.create_product(
                s,
                tenant_id,
                ProductIn.model_validate(
                    {
                        "name": f"Product {code}",
                        "skus": [{"code": code, "name": code, "unit": "pc"}],
                    }
                ),
            )
        await add_price_list(s, tenant_id, currency, PRICES)
        if tax_rate is not None:
            await taxes.create_tax_rate(
                s, tenant_id, TaxRateIn(code="STD", name="Standard", rate=tax_rate, is_default=True)
            )
        await s.commit()
    return World(db, tenant_id, key.token, customer.id, list(PRICES))


async def add_price_list(
    session: Any, tenant_id: uuid.UUID, currency: str, prices: dict[str, int], **kw: Any
) -> Any:
    from tradeflow.catalog import prices as catalog_prices

    return await catalog_prices.create_price_list(
        session,
        tenant_id,
        PriceListIn.model_validate(
            {
                "name": f"Base {currency} {uuid.uuid4().hex[:4]}",
                "currency": currency,
                "entries": [{"sku": c, "unit_price_minor": p} for c, p in prices.items()],
                **kw,
            }
        ),
    )


async def make_buyer(
    world: World,
    *,
    role: str = "buyer",
    spending_limit_minor: int | None = None,
    customer_id: uuid.UUID | None = None,
) -> uuid.UUID:
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    async with world.db.tenant_session(world.tenant_id) as s:
        profile = await customers.create_buyer(
            s,
            world.tenant_id,
            customer_id or world.customer_id,
            BuyerIn.model_validate(
                {
                    "email": email,
                    "password": PASSWORD,
                    "role": role,
                    "spending_limit_minor": spending_limit_minor,
                }
            ),
            actor=None,
        )
        await s.commit()
    world.extra[str(profile.user_id)] = email
    return profile.user_id


async def buyer_headers(client: AsyncClient, world: World, user_id: uuid.UUID) -> dict[str, str]:
    r = await client.post(
        "/v1/auth/login", json={"email": world.extra[str(user_id)], "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def make_customer(world: World, *, currency: str = "EUR", **kw: Any) -> uuid.UUID:
    async with world.db.tenant_session(world.tenant_id) as s:
        customer = await customers.create_customer(
            s, world.tenant_id, CustomerIn(name="Other Co", currency=currency, **kw)
        )
        await s.commit()
    return customer.id


def order_body(world: World, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    lines = lines or (("BOLT-1", 2), ("NUT-2", 3))
    return {
        "customer_id": str(world.customer_id),
        "currency": "EUR",
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        **extra,
    }


async def place(
    client: AsyncClient,
    world: World,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    key: str | None = None,
) -> Response:
    return await client.post(
        "/v1/orders",
        json=body if body is not None else order_body(world),
        headers={**(headers or world.staff), "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def act(
    client: AsyncClient,
    order: dict[str, Any] | Response,
    action: str,
    *,
    headers: dict[str, str],
    etag: str | None = None,
    body: dict[str, Any] | None = None,
) -> Response:
    if isinstance(order, Response):
        etag = etag or order.headers["etag"]
        order = order.json()
    return await client.post(
        f"/v1/orders/{order['id']}/{action}",
        headers={**headers, "If-Match": etag or f'"{order["version"]}"'},
        json=body,
    )


async def count(db: Database, sql: str, **params: Any) -> int:
    async with db.system_session() as s:
        return int((await s.execute(text(sql), params)).scalar_one())


async def event_types(db: Database, aggregate_id: uuid.UUID | str) -> list[str]:
    async with db.system_session() as s:
        rows = await s.execute(
            text("SELECT type FROM events WHERE aggregate_id = :a ORDER BY sequence"),
            {"a": str(aggregate_id)},
        )
        return [r[0] for r in rows]


async def set_sku_active(world: World, code: str, *, active: bool) -> None:
    from tradeflow.catalog import service as catalog
    from tradeflow.catalog.schemas import SkuPatch

    async with world.db.tenant_session(world.tenant_id) as s:
        sku = (await catalog.resolve_skus(s, [code]))[code]
        await products.update_sku(s, world.tenant_id, sku.id, SkuPatch(active=active))
        await s.commit()
