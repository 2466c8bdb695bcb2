"""Placing orders over the API: pricing snapshot, totals, idempotency, events, visibility."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from orders.factories import (
    PRICES,
    World,
    add_price_list,
    buyer_headers,
    count,
    event_types,
    make_buyer,
    make_customer,
    order_body,
    place,
)


async def test_place_order_prices_snapshots_and_taxes_each_line(
    client: AsyncClient, world: World
) -> None:
    r = await place(client, world, order_body(world, ("BOLT-1", 2), ("NUT-2", 3), ("GEAR-3", 1)))
    assert r.status_code == 201, r.text
    order = r.json()
    assert r.headers["location"] == f"/v1/orders/{order['id']}"
    assert r.headers["etag"] == '"1"'
    assert order["status"] == "placed"
    assert order["version"] == 1
    assert order["actions"] == ["confirm", "cancel"]
    nets = [2 * 1000, 3 * 250, 1 * 4999]
    taxes = [400, 150, 1000]  # 999.8 → 1000 (half-up, per line)
    assert [line["net_minor"] for line in order["lines"]] == nets
    assert [line["tax_minor"] for line in order["lines"]] == taxes
    assert [line["unit_price_minor"] for line in order["lines"]] == [1000, 250, 4999]
    assert [line["line_no"] for line in order["lines"]] == [1, 2, 3]
    assert order["lines"][0]["price_rule"]["kind"] == "base"
    assert order["lines"][0]["tax_code"] == "STD"
    assert order["subtotal_minor"] == sum(nets)
    assert order["tax_minor"] == sum(taxes)
    assert order["total_minor"] == sum(nets) + sum(taxes)

    got = await client.get(f"/v1/orders/{order['id']}", headers=world.staff)
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    assert got.json()["lines"] == order["lines"]
    assert await event_types(world.db, order["id"]) == ["order.created"]


async def test_later_price_changes_never_alter_an_order(client: AsyncClient, world: World) -> None:
    order = (await place(client, world, order_body(world, ("BOLT-1", 1)))).json()
    async with world.db.tenant_session(world.tenant_id) as s:
        # A newer base list wins from now on.
        await add_price_list(s, world.tenant_id, "EUR", {"BOLT-1": 7777})
        await s.commit()
    newer = (await place(client, world, order_body(world, ("BOLT-1", 1)))).json()
    assert newer["lines"][0]["unit_price_minor"] == 7777
    again = (await client.get(f"/v1/orders/{order['id']}", headers=world.staff)).json()
    assert again["lines"][0]["unit_price_minor"] == PRICES["BOLT-1"]
    assert again["total_minor"] == order["total_minor"]


async def test_line_tax_code_and_no_default_rate(client: AsyncClient, world: World) -> None:
    r = await client.post(
        "/v1/tax-rates",
        json={"code": "RED", "name": "Reduced", "rate": "7.5"},
        headers=world.staff,
    )
    assert r.status_code == 201, r.text
    body = order_body(world)
    body["lines"][1]["tax_code"] = "RED"
    order = (await place(client, world, body)).json()
    assert [line["tax_code"] for line in order["lines"]] == ["STD", "RED"]
    assert [line["tax_minor"] for line in order["lines"]] == [400, 56]  # 56.25 → 56

    std = (await client.get("/v1/tax-rates", headers=world.staff)).json()["items"]
    std_id = next(t["id"] for t in std if t["code"] == "STD")
    r = await client.patch(f"/v1/tax-rates/{std_id}", json={"active": False}, headers=world.staff)
    assert r.json() == {**r.json(), "active": False, "is_default": False}
    untaxed = (await place(client, world)).json()
    assert untaxed["tax_minor"] == 0
    assert {line["tax_code"] for line in untaxed["lines"]} == {None}


async def test_tax_rates_one_default_and_unique_codes(client: AsyncClient, world: World) -> None:
    r = await client.post(
        "/v1/tax-rates",
        json={"code": "NEW", "name": "New standard", "rate": "19", "is_default": True},
        headers=world.staff,
    )
    assert r.status_code == 201
    rates = (await client.get("/v1/tax-rates", headers=world.staff)).json()["items"]
    assert [t["code"] for t in rates if t["is_default"]] == ["NEW"]
    dup = await client.post(
        "/v1/tax-rates", json={"code": "NEW", "name": "again", "rate": "1"}, headers=world.staff
    )
    assert dup.status_code == 409
    assert dup.json()["type"].endswith("/duplicate-tax-rate")
    for bad in ("-1", "100.5", "1.23456", "abc"):
        r = await client.post(
            "/v1/tax-rates", json={"code": "X", "name": "x", "rate": bad}, headers=world.staff
        )
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == "rate"


async def test_idempotent_replay_reuse_and_missing_key(client: AsyncClient, world: World) -> None:
    body = order_body(world)
    first = await place(client, world, body, key="order-key-1")
    replay = await place(client, world, body, key="order-key-1")
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    # The replay carries the ETag the original 201 had, so If-Match works from either.
    assert replay.headers["etag"] == first.headers["etag"] == '"1"'

    other = await place(client, world, order_body(world, ("GEAR-3", 9)), key="order-key-1")
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")

    missing = await client.post("/v1/orders", json=body, headers=world.staff)
    assert missing.status_code == 400
    assert missing.json()["type"].endswith("/idempotency-key-missing")
    assert await count(world.db, "SELECT count(*) FROM orders") == 1


async def test_the_key_is_looked_up_before_the_body_is_validated(
    client: AsyncClient, world: World
) -> None:
    # A fresh key with an invalid body: the body's own errors, and the key stays free.
    invalid = order_body(world, ("BOLT-1", 0))
    refused = await place(client, world, invalid, key="early-1")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "lines.0.quantity"
    first = await place(client, world, order_body(world), key="early-1")
    assert first.status_code == 201, first.text
    # Once stored, the key answers before validation: the same body replays, and any other
    # body (even an invalid one) is a reuse of the key, not a validation error.
    replay = await place(client, world, order_body(world), key="early-1")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    reused = await place(client, world, invalid, key="early-1")
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    # A malformed key is still refused after the body's own validation, as before.
    bad_key = await place(client, world, invalid, key="bad\nkey")
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["field"] == "lines.0.quantity"
    assert await count(world.db, "SELECT count(*) FROM orders") == 1


async def test_buyers_order_for_their_own_company_and_see_only_its_orders(
    client: AsyncClient, world: World
) -> None:
    buyer = await buyer_headers(client, world, await make_buyer(world))
    mine = await place(client, world, headers=buyer)
    assert mine.status_code == 201, mine.text
    assert mine.json()["buyer_user_id"] is not None

    other_customer = await make_customer(world)
    r = await place(client, world, {**order_body(world), "customer_id": str(other_customer)},
                    headers=buyer)  # fmt: skip
    assert r.status_code == 403
    assert r.json()["type"].endswith("/not-your-customer")

    theirs = await place(client, world, {**order_body(world), "customer_id": str(other_customer)})
    assert theirs.status_code == 201
    listed = (await client.get("/v1/orders", headers=buyer)).json()["items"]
    assert [o["id"] for o in listed] == [mine.json()["id"]]
    hidden = await client.get(f"/v1/orders/{theirs.json()['id']}", headers=buyer)
    assert hidden.status_code == 404
    filtered = await client.get(
        "/v1/orders", params={"customer_id": str(other_customer)}, headers=buyer
    )
    assert filtered.json()["items"] == []
    staff_list = (await client.get("/v1/orders", headers=world.staff)).json()["items"]
    assert len(staff_list) == 2


async def test_list_filters_and_pagination(client: AsyncClient, world: World) -> None:
    ids = [(await place(client, world)).json()["id"] for _ in range(3)]
    page1 = (await client.get("/v1/orders", params={"limit": 2}, headers=world.staff)).json()
    assert [o["id"] for o in page1["items"]] == ids[::-1][:2]
    page2 = (
        await client.get(
            "/v1/orders", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=world.staff
        )
    ).json()
    assert [o["id"] for o in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None
    none = await client.get("/v1/orders", params={"status": "paid"}, headers=world.staff)
    assert none.json()["items"] == []
    bad = await client.get("/v1/orders", params={"status": "lost"}, headers=world.staff)
    assert bad.status_code == 422


async def test_scopes_are_required(client: AsyncClient, world: World) -> None:
    r = await client.post("/v1/orders", json=order_body(world), headers={"Idempotency-Key": "x"})
    assert r.status_code == 401
    missing = await client.get(f"/v1/orders/{uuid.uuid4()}", headers=world.staff)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/order-not-found")


def lines_of(order: dict[str, Any]) -> list[tuple[str, int]]:
    return [(line["sku"], line["quantity"]) for line in order["lines"]]
