"""Buyer users of a customer: creation through identity, login, their view, the contract."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from customers.support import (
    PASSWORD,
    Seller,
    buyer_headers,
    count,
    create_buyer,
    create_customer,
    create_group,
    events_of,
)
from tradeflow.customers import service
from tradeflow.db import Database


async def test_buyer_is_created_logs_in_and_sees_only_their_company(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    mine = await create_customer(client, seller)
    other = await create_customer(client, seller)
    admin = await create_buyer(
        client, seller, mine["id"], role="buyer-admin", spending_limit_minor=100_000
    )
    assert admin["role"] == "buyer-admin"
    assert admin["customer_id"] == mine["id"]
    assert admin["spending_limit_minor"] == 100_000

    created = await events_of(rolled_back, seller.tenant_id, "user.created")
    assert created == [
        {
            "user_id": admin["user_id"],
            "kind": "buyer",
            "email": admin["email"],
            "display_name": None,
            "role": "buyer-admin",
            "customer_id": mine["id"],
        }
    ]

    headers = await buyer_headers(client, admin["email"])
    me = (await client.get("/v1/me", headers=headers)).json()
    assert "customers:read" in me["scopes"]
    assert "customers:write" not in me["scopes"]

    assert (await client.get(f"/v1/customers/{mine['id']}", headers=headers)).status_code == 200
    assert (await client.get(f"/v1/customers/{other['id']}", headers=headers)).status_code == 404
    listed = (await client.get("/v1/customers", headers=headers)).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    r = await client.get(f"/v1/customers/{other['id']}/buyers", headers=headers)
    assert r.status_code == 404
    r = await client.get(f"/v1/customers/{mine['id']}/buyers", headers=headers)
    assert [b["user_id"] for b in r.json()["items"]] == [admin["user_id"]]

    # Buyers never write customers, nor see the seller's groups.
    r = await client.post("/v1/customers", json={"name": "X", "currency": "EUR"}, headers=headers)
    assert r.status_code == 403
    assert (await client.get("/v1/customer-groups", headers=headers)).status_code == 403


async def test_plain_buyer_cannot_read_customers(client: AsyncClient, seller: Seller) -> None:
    customer = await create_customer(client, seller)
    buyer = await create_buyer(client, seller, customer["id"])
    headers = await buyer_headers(client, buyer["email"])
    r = await client.get(f"/v1/customers/{customer['id']}", headers=headers)
    assert r.status_code == 403
    assert r.json()["missing"] == ["customers:read"]


async def test_failed_buyer_creation_leaves_nothing(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    customer = await create_customer(client, seller)
    url = f"/v1/customers/{customer['id']}/buyers"
    weak = await client.post(
        url, json={"email": "weak@example.com", "password": "password"}, headers=seller.headers
    )
    assert weak.status_code == 422
    bad_role = await client.post(
        url,
        json={"email": "r@example.com", "password": PASSWORD, "role": "owner"},
        headers=seller.headers,
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["errors"][0]["field"] == "role"
    first = await create_buyer(client, seller, customer["id"], email="dup@example.com")
    dup = await client.post(
        url, json={"email": "DUP@example.com", "password": PASSWORD}, headers=seller.headers
    )
    assert dup.status_code == 409
    assert await count(rolled_back, "SELECT count(*) FROM buyer_profiles") == 1
    assert await count(rolled_back, "SELECT count(*) FROM users WHERE kind = 'buyer'") == 1
    assert len(await events_of(rolled_back, seller.tenant_id, "user.created")) == 1
    assert first["email"] == "dup@example.com"

    missing = await client.post(
        f"/v1/customers/{uuid.uuid4()}/buyers",
        json={"email": "n@example.com", "password": PASSWORD},
        headers=seller.headers,
    )
    assert missing.status_code == 404

    await client.patch(
        f"/v1/customers/{customer['id']}", json={"active": False}, headers=seller.headers
    )
    inactive = await client.post(
        url, json={"email": "late@example.com", "password": PASSWORD}, headers=seller.headers
    )
    assert inactive.status_code == 409


async def test_spending_limit_update_and_contract_functions(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    group = await create_group(client, seller, discount_percent="12.5")
    customer = await create_customer(
        client, seller, group_id=group["id"], payment_terms_days=45, credit_limit_minor=9_999
    )
    buyer = await create_buyer(client, seller, customer["id"], spending_limit_minor=50_000)
    approver = await create_buyer(client, seller, customer["id"], role="approver")
    admin = await create_buyer(client, seller, customer["id"], role="buyer-admin")

    url = f"/v1/customers/{customer['id']}/buyers/{buyer['user_id']}"
    r = await client.patch(url, json={"spending_limit_minor": None}, headers=seller.headers)
    assert r.status_code == 200
    assert r.json()["spending_limit_minor"] is None
    r = await client.patch(url, json={"spending_limit_minor": -5}, headers=seller.headers)
    assert r.status_code == 422
    r = await client.patch(url, json={"role": "approver"}, headers=seller.headers)
    assert r.status_code == 422  # unknown field: roles are not changed here
    other = await create_customer(client, seller)
    wrong = f"/v1/customers/{other['id']}/buyers/{buyer['user_id']}"
    assert (await client.get(wrong, headers=seller.headers)).status_code == 404

    async with rolled_back.tenant_session(seller.tenant_id) as s:
        view = await service.get_customer(s, uuid.UUID(customer["id"]))
        assert view.currency == "EUR"
        assert view.payment_terms_days == 45
        assert view.credit_limit_minor == 9_999
        assert str(view.discount_percent) == "12.50"
        assert view.group_name == group["name"]
        b = await service.get_buyer(s, uuid.UUID(buyer["user_id"]))
        assert b is not None
        assert b.spending_limit_minor is None
        assert b.role == "buyer"
        assert await service.get_buyer(s, uuid.uuid4()) is None
        approvers = await service.list_approvers(s, uuid.UUID(customer["id"]))
        assert sorted(approvers) == sorted(
            [uuid.UUID(approver["user_id"]), uuid.UUID(admin["user_id"])]
        )
        with pytest.raises(service.CustomerNotFound):
            await service.get_customer(s, uuid.uuid4())
