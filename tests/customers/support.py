"""Factories for the customers and catalog tests: a seller with an API key, customers, buyers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

from identity.identity_factories import make_api_key, make_tenant
from tradeflow.db import Database

PASSWORD = "correct horse battery staple"


@dataclass
class Seller:
    tenant_id: uuid.UUID
    headers: dict[str, str]


async def make_seller(db: Database) -> Seller:
    tenant = await make_tenant(db)
    _, token = await make_api_key(db, tenant)
    return Seller(tenant.id, {"Authorization": f"Bearer {token}"})


def uniq(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_group(client: AsyncClient, seller: Seller, **fields: Any) -> dict[str, Any]:
    body = {"name": uniq("Group"), **fields}
    r = await client.post("/v1/customer-groups", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def create_customer(client: AsyncClient, seller: Seller, **fields: Any) -> dict[str, Any]:
    body = {"name": uniq("Customer"), "currency": "EUR", **fields}
    r = await client.post("/v1/customers", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def create_buyer(
    client: AsyncClient, seller: Seller, customer_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"email": f"{uniq('buyer')}@example.com", "password": PASSWORD, **fields}
    r = await client.post(f"/v1/customers/{customer_id}/buyers", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def buyer_headers(client: AsyncClient, email: str) -> dict[str, str]:
    r = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def events_of(db: Database, tenant_id: uuid.UUID, type_: str) -> list[dict[str, Any]]:
    async with db.system_session() as s:
        rows = await s.execute(
            text(
                "SELECT payload FROM events WHERE tenant_id = :t AND type = :type ORDER BY position"
            ),
            {"t": tenant_id, "type": type_},
        )
        return [dict(r[0]) for r in rows]


async def count(db: Database, sql: str, **params: Any) -> int:
    async with db.system_session() as s:
        return int((await s.execute(text(sql), params)).scalar_one())
