"""Catalog test factories: products with SKUs, price lists, contract prices, quotes."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient, Response

from customers.support import Seller, uniq


async def create_product(
    client: AsyncClient, seller: Seller, *codes: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": uniq("Product"),
        "skus": [{"code": c, "name": f"SKU {c}"} for c in codes],
        **fields,
    }
    r = await client.post("/v1/products", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def create_price_list(
    client: AsyncClient, seller: Seller, entries: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    body = {"name": uniq("List"), "currency": "EUR", "entries": entries, **fields}
    r = await client.post("/v1/price-lists", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def create_contract(
    client: AsyncClient, seller: Seller, customer_id: str, sku: str, price: int, **fields: Any
) -> dict[str, Any]:
    body = {"customer_id": customer_id, "sku": sku, "unit_price_minor": price, **fields}
    r = await client.post("/v1/contract-prices", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def quote(
    client: AsyncClient,
    headers: dict[str, str],
    sku: str,
    quantity: int = 1,
    customer_id: str | None = None,
    **params: Any,
) -> Response:
    query: dict[str, Any] = {"sku": sku, "quantity": quantity, **params}
    if customer_id is not None:
        query["customer_id"] = customer_id
    return await client.get("/v1/prices/quote", params=query, headers=headers)


async def price_of(
    client: AsyncClient, seller: Seller, customer_id: str, sku: str, quantity: int = 1
) -> tuple[int, str]:
    r = await quote(client, seller.headers, sku, quantity, customer_id)
    assert r.status_code == 200, r.text
    body = r.json()
    return int(body["unit_price_minor"]), str(body["rule"]["kind"])
