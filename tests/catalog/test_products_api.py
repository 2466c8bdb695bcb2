"""Products and SKUs through the HTTP API."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from catalog.support import create_product
from customers.support import (
    Seller,
    buyer_headers,
    count,
    create_buyer,
    create_customer,
    events_of,
    uniq,
)
from tradeflow.db import Database


async def test_create_product_with_skus_and_read_it_back(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    a, b = uniq("A"), uniq("B")
    body = {
        "name": "Hex bolt M8",
        "description": "Zinc plated.\nDIN 933.",
        "attributes": {"material": "steel", "sizes": ["M8x40", "M8x50"], "din": 933},
        "skus": [
            {"code": a, "name": "M8x40", "unit": "box", "attributes": {"per_box": 100}},
            {"code": b, "name": "M8x50"},
        ],
    }
    r = await client.post("/v1/products", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    product = r.json()
    assert [s["code"] for s in product["skus"]] == [a, b]
    assert product["skus"][0]["unit"] == "box"
    assert product["skus"][1]["unit"] == "each"
    got = await client.get(f"/v1/products/{product['id']}", headers=seller.headers)
    assert got.json() == product
    assert got.headers["etag"] == '"1"'

    sku = product["skus"][0]
    r = await client.get(f"/v1/skus/{sku['id']}", headers=seller.headers)
    assert r.json() == sku
    r = await client.get("/v1/skus", params={"code": [a, b]}, headers=seller.headers)
    assert {s["code"] for s in r.json()["items"]} == {a, b}

    created = await events_of(rolled_back, seller.tenant_id, "product.created")
    assert created == [
        {"product_id": product["id"], "name": "Hex bolt M8", "active": True, "sku_codes": [a, b]}
    ]
    assert len(await events_of(rolled_back, seller.tenant_id, "sku.created")) == 2


async def test_sku_codes_are_unique_per_seller(
    client: AsyncClient, seller: Seller, other_seller: Seller, rolled_back: Database
) -> None:
    code = uniq("DUP")
    product = await create_product(client, seller, code)
    r = await client.post(
        "/v1/products",
        json={"name": "Again", "skus": [{"code": code, "name": "again"}]},
        headers=seller.headers,
    )
    assert r.status_code == 409
    assert r.json()["field"] == "skus.0.code"
    r = await client.post(
        f"/v1/products/{product['id']}/skus",
        json={"code": code, "name": "again"},
        headers=seller.headers,
    )
    assert r.status_code == 409
    assert r.json()["field"] == "code"
    r = await client.post(
        "/v1/products",
        json={"name": "Twice", "skus": [{"code": "X1", "name": "a"}, {"code": "X1", "name": "b"}]},
        headers=seller.headers,
    )
    assert r.status_code == 422
    # The failed creates left no product behind.
    assert await count(rolled_back, "SELECT count(*) FROM products") == 1
    # Another seller may use the same code.
    await create_product(client, other_seller, code)


async def test_bad_product_input(client: AsyncClient, seller: Seller) -> None:
    cases = [
        ({"name": "P", "skus": [{"code": "has space", "name": "x"}]}, "skus.0.code"),
        ({"name": "P", "skus": [{"code": "-lead", "name": "x"}]}, "skus.0.code"),
        ({"name": "P", "attributes": {"a": {"b": {"c": {"d": 1}}}}}, "attributes"),
        ({"name": "P", "attributes": {"k": "v\u0000"}}, "attributes"),
        ({"name": "P", "attributes": {"big": 2**60}}, "attributes"),
        ({"name": "P", "attributes": [1, 2]}, "attributes"),
        ({"name": "P", "price": 10}, "price"),
        ({"name": "\u202e\u0007"}, "name"),
    ]
    for body, field in cases:
        r = await client.post("/v1/products", json=body, headers=seller.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())


async def test_update_product_and_sku(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    code = uniq("U")
    product = await create_product(client, seller, code)
    url = f"/v1/products/{product['id']}"
    r = await client.patch(
        url,
        json={"name": "Renamed", "active": False},
        headers={**seller.headers, "If-Match": '"1"'},
    )
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed"
    assert r.headers["etag"] == '"2"'
    r = await client.patch(
        url, json={"name": "Late"}, headers={**seller.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 412
    updated = await events_of(rolled_back, seller.tenant_id, "product.updated")
    assert updated[0]["changed"] == ["active", "name"]

    sku_url = f"/v1/skus/{product['skus'][0]['id']}"
    r = await client.patch(sku_url, json={"unit": "kg", "code": "NEW"}, headers=seller.headers)
    assert r.status_code == 422  # the code is permanent
    r = await client.patch(sku_url, json={"unit": "kg"}, headers=seller.headers)
    assert r.json()["unit"] == "kg"

    r = await client.get("/v1/products", params={"active": "false"}, headers=seller.headers)
    assert [p["id"] for p in r.json()["items"]] == [product["id"]]
    r = await client.get("/v1/products", params={"name": "renamed"}, headers=seller.headers)
    assert [p["id"] for p in r.json()["items"]] == [product["id"]]


async def test_buyers_see_active_products_only_and_cannot_write(
    client: AsyncClient, seller: Seller
) -> None:
    live = await create_product(client, seller, uniq("L"))
    hidden = await create_product(client, seller, uniq("H"), active=False)
    customer = await create_customer(client, seller)
    buyer = await create_buyer(client, seller, customer["id"])
    headers = await buyer_headers(client, buyer["email"])

    r = await client.get("/v1/products", params={"active": "false"}, headers=headers)
    assert [p["id"] for p in r.json()["items"]] == [live["id"]]
    assert (await client.get(f"/v1/products/{hidden['id']}", headers=headers)).status_code == 404
    r = await client.post("/v1/products", json={"name": "X"}, headers=headers)
    assert r.status_code == 403


async def test_products_of_another_seller_are_invisible(
    client: AsyncClient, seller: Seller, other_seller: Seller
) -> None:
    product = await create_product(client, seller, uniq("T"))
    sku_id = product["skus"][0]["id"]
    for url in (f"/v1/products/{product['id']}", f"/v1/skus/{sku_id}"):
        assert (await client.get(url, headers=other_seller.headers)).status_code == 404
    r = await client.post(
        f"/v1/products/{product['id']}/skus",
        json={"code": uniq("Z"), "name": "z"},
        headers=other_seller.headers,
    )
    assert r.status_code == 404
    assert (await client.get("/v1/skus", headers=other_seller.headers)).json()["items"] == []
    missing = await client.get(f"/v1/products/{uuid.uuid4()}", headers=seller.headers)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/product-not-found")
