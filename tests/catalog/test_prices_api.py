"""Price lists, their entries (tiers) and contract prices through the HTTP API."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from catalog.support import create_contract, create_price_list, create_product
from customers.support import (
    Seller,
    buyer_headers,
    count,
    create_buyer,
    create_customer,
    create_group,
    events_of,
    uniq,
)
from tradeflow.db import Database


async def test_bad_price_lists_name_the_field_and_write_nothing(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    sku = uniq("S")
    await create_product(client, seller, sku)
    good = {"sku": sku, "unit_price_minor": 100}
    cases = [
        ({"entries": [good, {"sku": "MISSING", "unit_price_minor": 1}]}, 422, "entries.1.sku"),
        ({"customer_group_id": str(uuid.uuid4())}, 422, "customer_group_id"),
        ({"currency": "ABC"}, 422, "currency"),
        ({"entries": [{**good, "unit_price_minor": -1}]}, 422, "entries.0.unit_price_minor"),
        ({"entries": [{**good, "unit_price_minor": 10**13}]}, 422, "entries.0.unit_price_minor"),
        ({"entries": [{**good, "min_quantity": 0}]}, 422, "entries.0.min_quantity"),
        ({"valid_from": "2030-01-01T00:00:00Z", "valid_to": "2030-01-01T00:00:00Z"}, 422, None),
        ({"valid_from": "2030-01-01T00:00:00"}, 422, "valid_from"),
        ({"entries": [good, good]}, 422, None),
    ]
    for extra, status, field in cases:
        body = {"name": "L", "currency": "EUR", "entries": [good], **extra}
        r = await client.post("/v1/price-lists", json=body, headers=seller.headers)
        assert r.status_code == status, (extra, r.text)
        problem = r.json()
        if field is not None:
            fields = {e["field"] for e in problem.get("errors", [])} | {problem.get("field")}
            assert field in fields, (extra, problem)
    assert await count(rolled_back, "SELECT count(*) FROM price_lists") == 0
    assert await count(rolled_back, "SELECT count(*) FROM price_list_entries") == 0
    assert await events_of(rolled_back, seller.tenant_id, "price_list.changed") == []


async def test_entries_lifecycle(client: AsyncClient, seller: Seller) -> None:
    a, b = uniq("A"), uniq("B")
    await create_product(client, seller, a, b)
    price_list = await create_price_list(client, seller, [{"sku": a, "unit_price_minor": 100}])
    url = f"/v1/price-lists/{price_list['id']}/entries"

    r = await client.post(
        url, json={"sku": b, "min_quantity": 10, "unit_price_minor": 80}, headers=seller.headers
    )
    assert r.status_code == 201
    entry = r.json()
    assert (entry["sku"], entry["min_quantity"]) == (b, 10)
    dup = await client.post(
        url, json={"sku": b, "min_quantity": 10, "unit_price_minor": 70}, headers=seller.headers
    )
    assert dup.status_code == 409
    assert dup.json()["field"] == "min_quantity"
    r = await client.patch(
        f"{url}/{entry['id']}", json={"unit_price_minor": 75}, headers=seller.headers
    )
    assert r.json()["unit_price_minor"] == 75
    r = await client.get(url, params={"sku": b}, headers=seller.headers)
    assert [e["id"] for e in r.json()["items"]] == [entry["id"]]
    r = await client.get(url, params={"sku": "NOPE"}, headers=seller.headers)
    assert r.json()["items"] == []
    assert (await client.delete(f"{url}/{entry['id']}", headers=seller.headers)).status_code == 204
    assert (await client.get(f"{url}/{entry['id']}", headers=seller.headers)).status_code == 404

    r = await client.patch(
        f"/v1/price-lists/{price_list['id']}",
        json={"valid_to": "2000-01-01T00:00:00Z", "valid_from": "2001-01-01T00:00:00Z"},
        headers=seller.headers,
    )
    assert r.status_code == 422
    r = await client.patch(
        f"/v1/price-lists/{price_list['id']}", json={"currency": "USD"}, headers=seller.headers
    )
    assert r.status_code == 422  # currency is fixed
    r = await client.delete(f"/v1/price-lists/{price_list['id']}", headers=seller.headers)
    assert r.status_code == 204
    assert (await client.get(url, headers=seller.headers)).status_code == 404


async def test_list_filters(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("F")
    await create_product(client, seller, sku)
    group = await create_group(client, seller)
    entry = [{"sku": sku, "unit_price_minor": 1}]
    base = await create_price_list(client, seller, entry)
    usd = await create_price_list(client, seller, entry, currency="USD")
    trade = await create_price_list(client, seller, entry, customer_group_id=group["id"])
    later = await create_price_list(client, seller, entry, valid_from="2040-01-01T00:00:00Z")

    async def ids(**params: str) -> list[str]:
        r = await client.get("/v1/price-lists", params=params, headers=seller.headers)
        return [p["id"] for p in r.json()["items"]]

    assert await ids(currency="USD") == [usd["id"]]
    assert await ids(customer_group_id=group["id"]) == [trade["id"]]
    assert set(await ids(base="true")) == {base["id"], usd["id"], later["id"]}
    assert later["id"] not in await ids(valid_on="2030-01-01T00:00:00Z")
    assert later["id"] in await ids(valid_on="2040-01-01T00:00:00Z")


async def test_contract_prices(client: AsyncClient, seller: Seller, rolled_back: Database) -> None:
    sku = uniq("K")
    await create_product(client, seller, sku)
    customer = await create_customer(client, seller, currency="CHF")
    body = {"customer_id": customer["id"], "sku": sku, "unit_price_minor": 500}
    for extra, field in (
        ({"currency": "EUR"}, "currency"),
        ({"customer_id": str(uuid.uuid4())}, "customer_id"),
        ({"sku": "NOT-THERE"}, "sku"),
    ):
        r = await client.post("/v1/contract-prices", json={**body, **extra}, headers=seller.headers)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
    contract = await create_contract(
        client, seller, customer["id"], sku, 500, min_quantity=5, note="Q1 deal"
    )
    assert contract["currency"] == "CHF"
    url = f"/v1/contract-prices/{contract['id']}"
    r = await client.patch(url, json={"unit_price_minor": 450}, headers=seller.headers)
    assert r.json()["unit_price_minor"] == 450
    r = await client.patch(url, json={"unit_price_minor": None}, headers=seller.headers)
    assert r.status_code == 422
    r = await client.get(
        "/v1/contract-prices", params={"customer_id": customer["id"]}, headers=seller.headers
    )
    assert [c["id"] for c in r.json()["items"]] == [contract["id"]]
    r = await client.get("/v1/contract-prices", params={"sku": sku}, headers=seller.headers)
    assert [c["id"] for c in r.json()["items"]] == [contract["id"]]
    changes = await events_of(rolled_back, seller.tenant_id, "contract_price.changed")
    assert [(c["change"], c["unit_price_minor"]) for c in changes] == [
        ("created", 500),
        ("updated", 450),
    ]
    assert (await client.delete(url, headers=seller.headers)).status_code == 204
    assert (await client.get(url, headers=seller.headers)).status_code == 404


async def test_buyers_see_only_what_prices_them(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("V")
    await create_product(client, seller, sku)
    mine, theirs = await create_group(client, seller), await create_group(client, seller)
    entry = [{"sku": sku, "unit_price_minor": 1}]
    base = await create_price_list(client, seller, entry)
    own = await create_price_list(client, seller, entry, customer_group_id=mine["id"])
    other = await create_price_list(client, seller, entry, customer_group_id=theirs["id"])
    off = await create_price_list(client, seller, entry, active=False)
    customer = await create_customer(client, seller, group_id=mine["id"])
    contract = await create_contract(client, seller, customer["id"], sku, 1)
    buyer = await create_buyer(client, seller, customer["id"])
    headers = await buyer_headers(client, buyer["email"])

    r = await client.get("/v1/price-lists", headers=headers)
    assert {p["id"] for p in r.json()["items"]} == {base["id"], own["id"]}
    for hidden in (other, off):
        url = f"/v1/price-lists/{hidden['id']}"
        assert (await client.get(url, headers=headers)).status_code == 404
        assert (await client.get(f"{url}/entries", headers=headers)).status_code == 404
    assert (await client.get(f"/v1/price-lists/{own['id']}", headers=headers)).status_code == 200
    r = await client.get("/v1/contract-prices", headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [contract["id"]]
    r = await client.post("/v1/price-lists", json={"name": "x", "currency": "EUR"}, headers=headers)
    assert r.status_code == 403
