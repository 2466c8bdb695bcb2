"""`GET /v1/prices/quote`: precedence, tiers, windows, explanations, errors, who may ask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from catalog.support import create_contract, create_price_list, create_product, price_of, quote
from customers.support import (
    Seller,
    buyer_headers,
    create_buyer,
    create_customer,
    create_group,
    uniq,
)
from tradeflow.catalog import service
from tradeflow.db import Database


async def test_precedence_tiers_and_explanation(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("BOLT")
    await create_product(client, seller, sku)
    group = await create_group(client, seller, discount_percent="10")
    customer = await create_customer(client, seller, group_id=group["id"])
    plain = await create_customer(client, seller)
    cid = customer["id"]

    base = await create_price_list(
        client,
        seller,
        [
            {"sku": sku, "min_quantity": 1, "unit_price_minor": 1000},
            {"sku": sku, "min_quantity": 10, "unit_price_minor": 900},
        ],
        name="Base EUR",
    )
    # Only the base list: the group's 10 % discount applies to it, rounded half-up.
    assert await price_of(client, seller, cid, sku, 1) == (900, "group_discount")
    assert await price_of(client, seller, cid, sku, 10) == (810, "group_discount")
    assert await price_of(client, seller, plain["id"], sku, 9) == (1000, "base")
    assert await price_of(client, seller, plain["id"], sku, 10) == (900, "base")

    trade = await create_price_list(
        client,
        seller,
        [
            {"sku": sku, "min_quantity": 5, "unit_price_minor": 850},
            {"sku": sku, "min_quantity": 100, "unit_price_minor": 700},
        ],
        name="Trade",
        customer_group_id=group["id"],
    )
    # Below the group list's first tier the base price (less discount) still applies.
    assert await price_of(client, seller, cid, sku, 4) == (900, "group_discount")
    assert await price_of(client, seller, cid, sku, 5) == (850, "price_list")
    assert await price_of(client, seller, cid, sku, 99) == (850, "price_list")
    assert await price_of(client, seller, cid, sku, 100) == (700, "price_list")

    contract = await create_contract(client, seller, cid, sku, 600, note="Frame deal 2025")
    r = await quote(client, seller.headers, sku, 100, cid)
    body = r.json()
    assert body["unit_price_minor"] == 600
    assert body["amount_minor"] == 60_000
    assert body["currency"] == "EUR"
    assert body["rule"]["kind"] == "contract"
    assert body["rule"]["id"] == contract["id"]
    assert body["rule"]["name"] == "Frame deal 2025"
    assert "Contract price" in body["rule"]["detail"]
    assert body["rule"]["considered"] == [
        "price_list 'Trade': 700",
        "group_discount 'Base EUR': 810",
    ]
    assert body["name"] == f"SKU {sku}"
    assert body["unit"] == "each"
    assert {trade["id"], base["id"]}.isdisjoint({body["rule"]["id"]})


async def test_validity_windows_and_the_on_parameter(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("NUT")
    await create_product(client, seller, sku)
    customer = await create_customer(client, seller)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = datetime(2030, 2, 1, tzinfo=UTC)
    await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 500}])
    await create_contract(
        client,
        seller,
        customer["id"],
        sku,
        400,
        valid_from=start.isoformat(),
        valid_to=end.isoformat(),
    )

    async def at(when: datetime) -> tuple[int, str]:
        r = await quote(client, seller.headers, sku, 1, customer["id"], on=when.isoformat())
        assert r.status_code == 200, r.text
        return r.json()["unit_price_minor"], r.json()["rule"]["kind"]

    assert await at(start - timedelta(microseconds=1)) == (500, "base")
    assert await at(start) == (400, "contract")  # the start is inclusive
    assert await at(end - timedelta(microseconds=1)) == (400, "contract")
    assert await at(end) == (500, "base")  # the end is exclusive
    assert (await price_of(client, seller, customer["id"], sku)) == (500, "base")  # now: 2020s

    r = await quote(client, seller.headers, sku, 1, customer["id"], on="2030-01-01T00:00:00")
    assert r.status_code == 422  # a naive time is ambiguous


async def test_errors_name_the_problem(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("W")
    product = await create_product(client, seller, sku)
    customer = await create_customer(client, seller)
    cid = customer["id"]

    r = await quote(client, seller.headers, sku, 1, cid)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/no-price")

    await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 100}])
    usd = await create_customer(client, seller, currency="USD")
    r = await quote(client, seller.headers, sku, 1, usd["id"])
    assert r.json()["type"].endswith("/no-price")  # a EUR list never prices a USD customer

    r = await quote(client, seller.headers, "NOPE-404", 1, cid)
    assert r.status_code == 404
    assert r.json()["type"].endswith("/sku-not-found")
    r = await quote(client, seller.headers, sku, 1, str(uuid.uuid4()))
    assert r.status_code == 404
    assert r.json()["type"].endswith("/customer-not-found")
    for bad in (0, -3, 10**10, "many"):
        r = await quote(client, seller.headers, sku, bad, cid)  # type: ignore[arg-type]
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "quantity"
    r = await quote(client, seller.headers, "bad code!", 1, cid)
    assert r.status_code == 422
    r = await quote(client, seller.headers, sku, 1)
    assert r.status_code == 422
    assert r.json()["field"] == "customer_id"

    await client.patch(f"/v1/customers/{cid}", json={"active": False}, headers=seller.headers)
    r = await quote(client, seller.headers, sku, 1, cid)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/customer-inactive")
    await client.patch(f"/v1/customers/{cid}", json={"active": True}, headers=seller.headers)

    sku_id = product["skus"][0]["id"]
    await client.patch(f"/v1/skus/{sku_id}", json={"active": False}, headers=seller.headers)
    r = await quote(client, seller.headers, sku, 1, cid)
    assert r.json()["type"].endswith("/sku-inactive")
    await client.patch(f"/v1/skus/{sku_id}", json={"active": True}, headers=seller.headers)
    assert (await quote(client, seller.headers, sku, 1, cid)).status_code == 200
    await client.patch(
        f"/v1/products/{product['id']}", json={"active": False}, headers=seller.headers
    )
    r = await quote(client, seller.headers, sku, 1, cid)
    assert r.json()["type"].endswith("/sku-inactive")


async def test_buyers_quote_only_for_their_own_company(client: AsyncClient, seller: Seller) -> None:
    sku = uniq("B")
    await create_product(client, seller, sku)
    await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 250}])
    mine = await create_customer(client, seller)
    other = await create_customer(client, seller)
    await create_contract(client, seller, other["id"], sku, 1)
    buyer = await create_buyer(client, seller, mine["id"])
    headers = await buyer_headers(client, buyer["email"])

    r = await quote(client, headers, sku, 3)
    assert r.status_code == 200
    assert r.json()["customer_id"] == mine["id"]
    assert r.json()["unit_price_minor"] == 250
    r = await quote(client, headers, sku, 3, mine["id"])
    assert r.status_code == 200
    r = await quote(client, headers, sku, 3, other["id"])
    assert r.status_code == 404

    # Another company's contract prices are invisible to this buyer.
    r = await client.get("/v1/contract-prices", headers=headers)
    assert r.json()["items"] == []
    r = await client.get(
        "/v1/contract-prices", params={"customer_id": other["id"]}, headers=headers
    )
    assert r.json()["items"] == []


async def test_quote_many_reads_once_and_names_the_line(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    a, b = uniq("A"), uniq("B")
    await create_product(client, seller, a, b)
    await create_price_list(
        client,
        seller,
        [
            {"sku": a, "unit_price_minor": 100},
            {"sku": b, "unit_price_minor": 200},
            {"sku": b, "min_quantity": 10, "unit_price_minor": 150},
        ],
    )
    customer = uuid.UUID((await create_customer(client, seller))["id"])
    async with rolled_back.tenant_session(seller.tenant_id) as s:
        quotes = await service.quote_many(s, customer_id=customer, lines=[(a, 2), (b, 10)])
        assert [(q.sku, q.unit_price_minor, q.amount_minor) for q in quotes] == [
            (a, 100, 200),
            (b, 150, 1500),
        ]
        with pytest.raises(service.SkuNotFound) as caught:
            await service.quote_many(s, customer_id=customer, lines=[(a, 1), ("GONE", 1)])
        assert caught.value.extra == {"field": "sku", "line": 1}
        skus = await service.resolve_skus(s, [a, "GONE", a])
        assert set(skus) == {a}
        assert skus[a].active
        assert skus[a].unit == "each"
