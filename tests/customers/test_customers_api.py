"""Customers and customer groups through the HTTP API, against real PostgreSQL."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from customers.support import Seller, count, create_customer, create_group, events_of, uniq
from tradeflow.db import Database


async def test_create_and_read_customer(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    group = await create_group(client, seller, discount_percent="5")
    body = {
        "name": "Müller Großhandel GmbH",
        "tax_id": "DE123456789",
        "billing_address": {
            "line1": "Hauptstraße 1",
            "city": "Köln",
            "postal_code": "50667",
            "country": "DE",
        },
        "currency": "eur",
        "payment_terms_days": 14,
        "credit_limit_minor": 5_000_000,
        "group_id": group["id"],
    }
    r = await client.post("/v1/customers", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["currency"] == "EUR"
    assert created["billing_address"]["line2"] == ""
    assert r.headers["location"] == f"/v1/customers/{created['id']}"

    got = await client.get(f"/v1/customers/{created['id']}", headers=seller.headers)
    assert got.status_code == 200
    assert got.json() == created
    assert got.headers["etag"] == '"1"'

    events = await events_of(rolled_back, seller.tenant_id, "customer.created")
    assert [e["customer_id"] for e in events] == [created["id"]]
    assert events[0]["credit_limit_minor"] == 5_000_000


async def test_bad_input_names_the_field_and_writes_nothing(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    cases = [
        ({"name": "A", "currency": "XYZ"}, "currency"),
        ({"name": "A", "currency": "EUR", "colour": "red"}, "colour"),
        ({"name": "   ", "currency": "EUR"}, "name"),
        ({"name": "A\u0000B", "currency": "EUR"}, "name"),
        ({"name": "A", "currency": "EUR", "credit_limit_minor": 10**30}, "credit_limit_minor"),
        ({"name": "A", "currency": "EUR", "credit_limit_minor": -1}, "credit_limit_minor"),
        ({"name": "A", "currency": "EUR", "payment_terms_days": 1000}, "payment_terms_days"),
        ({"name": "x" * 201, "currency": "EUR"}, "name"),
        ({"name": "A", "currency": "EUR", "credit_limit_minor": 1.5}, "credit_limit_minor"),
    ]
    for body, field in cases:
        r = await client.post("/v1/customers", json=body, headers=seller.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in r.json()["errors"]}, (body, r.json())

    # A lone surrogate is valid JSON but no valid text: refused, not a 500.
    r = await client.post(
        "/v1/customers",
        content=b'{"name": "bad \\ud800 name", "currency": "EUR"}',
        headers={**seller.headers, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "name"

    r = await client.post(
        "/v1/customers",
        content=b'{"name": "A", ',
        headers={**seller.headers, "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["type"].endswith("/malformed-json")

    unknown_group = {"name": "A", "currency": "EUR", "group_id": str(uuid.uuid4())}
    r = await client.post("/v1/customers", json=unknown_group, headers=seller.headers)
    assert r.status_code == 422
    assert r.json()["field"] == "group_id"

    assert await count(rolled_back, "SELECT count(*) FROM customers") == 0
    assert await events_of(rolled_back, seller.tenant_id, "customer.created") == []


async def test_unicode_names_are_normalised(client: AsyncClient, seller: Seller) -> None:
    decomposed = "Cafe\u0301 Ölwerk 東京 👩‍🔧"
    created = await create_customer(client, seller, name=f"  {decomposed}  ")
    assert created["name"] == "Café Ölwerk 東京 👩‍🔧"  # NFC, trimmed, emoji ZWJ kept


async def test_list_filters_and_pagination(client: AsyncClient, seller: Seller) -> None:
    group = await create_group(client, seller)
    in_group = [await create_customer(client, seller, group_id=group["id"]) for _ in range(3)]
    usd = await create_customer(client, seller, currency="USD", name="Acme Tools Inc")
    await create_customer(client, seller, active=False)

    r = await client.get(
        "/v1/customers", params={"group_id": group["id"], "limit": 2}, headers=seller.headers
    )
    page1 = r.json()
    assert [c["id"] for c in page1["items"]] == [c["id"] for c in reversed(in_group)][:2]
    r = await client.get(
        "/v1/customers",
        params={"group_id": group["id"], "limit": 2, "cursor": page1["next_cursor"]},
        headers=seller.headers,
    )
    assert [c["id"] for c in r.json()["items"]] == [in_group[0]["id"]]
    assert r.json()["next_cursor"] is None

    r = await client.get("/v1/customers", params={"currency": "usd"}, headers=seller.headers)
    assert [c["id"] for c in r.json()["items"]] == [usd["id"]]
    r = await client.get("/v1/customers", params={"name": "tools"}, headers=seller.headers)
    assert [c["id"] for c in r.json()["items"]] == [usd["id"]]
    r = await client.get("/v1/customers", params={"name": "%"}, headers=seller.headers)
    assert r.json()["items"] == []
    r = await client.get("/v1/customers", params={"active": "false"}, headers=seller.headers)
    assert len(r.json()["items"]) == 1


async def test_update_with_if_match_and_null_clears(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    group = await create_group(client, seller)
    customer = await create_customer(client, seller, group_id=group["id"], tax_id="T1")
    url = f"/v1/customers/{customer['id']}"

    r = await client.patch(
        url, json={"group_id": None, "tax_id": None}, headers={**seller.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["group_id"] is None
    assert r.json()["tax_id"] is None
    assert r.headers["etag"] == '"2"'

    stale = await client.patch(
        url, json={"name": "Stale"}, headers={**seller.headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == '"2"'

    r = await client.patch(url, json={"currency": None}, headers=seller.headers)
    assert r.status_code == 422
    assert r.json()["field"] == "currency"

    updated = await events_of(rolled_back, seller.tenant_id, "customer.updated")
    assert [e["changed"] for e in updated] == [["group_id", "tax_id"]]


async def test_groups_unique_names_and_delete_rules(client: AsyncClient, seller: Seller) -> None:
    name = uniq("Wholesale")
    group = await create_group(client, seller, name=name)
    dup = await client.post(
        "/v1/customer-groups", json={"name": name.upper()}, headers=seller.headers
    )
    assert dup.status_code == 409
    assert dup.json()["field"] == "name"

    r = await client.post(
        "/v1/customer-groups",
        json={"name": "Too generous", "discount_percent": "100.01"},
        headers=seller.headers,
    )
    assert r.status_code == 422

    customer = await create_customer(client, seller, group_id=group["id"])
    r = await client.delete(f"/v1/customer-groups/{group['id']}", headers=seller.headers)
    assert r.status_code == 409
    await client.patch(
        f"/v1/customers/{customer['id']}", json={"group_id": None}, headers=seller.headers
    )
    r = await client.delete(f"/v1/customer-groups/{group['id']}", headers=seller.headers)
    assert r.status_code == 204
    r = await client.get(f"/v1/customer-groups/{group['id']}", headers=seller.headers)
    assert r.status_code == 404


async def test_idempotent_create_replays(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    headers = {**seller.headers, "Idempotency-Key": "cust-1"}
    body = {"name": "Replay Ltd", "currency": "GBP"}
    first = await client.post("/v1/customers", json=body, headers=headers)
    again = await client.post("/v1/customers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/customers", json={**body, "name": "Other"}, headers=headers)
    assert other.status_code == 422
    assert await count(rolled_back, "SELECT count(*) FROM customers") == 1


async def test_other_tenant_sees_nothing(
    client: AsyncClient, seller: Seller, other_seller: Seller
) -> None:
    customer = await create_customer(client, seller)
    group = await create_group(client, seller)
    for url in (f"/v1/customers/{customer['id']}", f"/v1/customer-groups/{group['id']}"):
        r = await client.get(url, headers=other_seller.headers)
        assert r.status_code == 404
    r = await client.get("/v1/customers", headers=other_seller.headers)
    assert r.json()["items"] == []
    r = await client.patch(
        f"/v1/customers/{customer['id']}", json={"name": "x"}, headers=other_seller.headers
    )
    assert r.status_code == 404
