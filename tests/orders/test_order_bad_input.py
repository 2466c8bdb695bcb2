"""Bad input to `POST /v1/orders` (issue 4 §7): each a clear problem+json naming the field,
and nothing half-written — no order, no line, no stored idempotency key, no event."""

from __future__ import annotations

import json
import unicodedata
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from orders.factories import World, count, make_customer, order_body, set_sku_active
from tradeflow.orders.totals import MAX_LINES


async def nothing_written(world: World) -> None:
    assert await count(world.db, "SELECT count(*) FROM orders") == 0
    assert await count(world.db, "SELECT count(*) FROM order_lines") == 0
    assert await count(world.db, "SELECT count(*) FROM idempotency_keys") == 0
    assert await count(world.db, "SELECT count(*) FROM events WHERE type LIKE 'order.%'") == 0


async def post_raw(client: AsyncClient, world: World, content: bytes) -> Any:
    return await client.post(
        "/v1/orders",
        content=content,
        headers={
            **world.staff,
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
    )


def with_lines(world: World, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**order_body(world), "lines": list(lines), **extra}


CASES: list[tuple[str, Any, int, str, str]] = [
    # (name, body-builder, status, problem slug, field named)
    ("unknown sku", lambda w: with_lines(w, {"sku": "NOPE-9", "quantity": 1}),
     422, "invalid-order", "lines.0.sku"),
    ("zero quantity", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 0}),
     422, "validation-error", "lines.0.quantity"),
    ("negative quantity", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 1},
                                               {"sku": "NUT-2", "quantity": -5}),
     422, "validation-error", "lines.1.quantity"),
    ("quantity as string", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": "5"}),
     422, "validation-error", "lines.0.quantity"),
    ("quantity as float", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 1.5}),
     422, "validation-error", "lines.0.quantity"),
    ("quantity as bool", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": True}),
     422, "validation-error", "lines.0.quantity"),
    ("absurd quantity", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 10**30}),
     422, "validation-error", "lines.0.quantity"),
    ("currency mismatch", lambda w: {**order_body(w), "currency": "USD"},
     422, "invalid-order", "currency"),
    ("lower-case currency", lambda w: {**order_body(w), "currency": "eur"},
     422, "validation-error", "currency"),
    ("no lines", lambda w: with_lines(w), 422, "validation-error", "lines"),
    ("too many lines",
     lambda w: with_lines(w, *[{"sku": "BOLT-1", "quantity": 1}] * (MAX_LINES + 1)),
     422, "validation-error", "lines"),
    ("unknown field", lambda w: {**order_body(w), "discount": 50},
     422, "validation-error", "discount"),
    ("unknown line field", lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 1, "price": 1}),
     422, "validation-error", "lines.0.price"),
    ("customer id not a uuid", lambda w: {**order_body(w), "customer_id": "acme"},
     422, "validation-error", "customer_id"),
    ("unknown customer", lambda w: {**order_body(w), "customer_id": str(uuid.uuid4())},
     422, "invalid-order", "customer_id"),
    ("unknown tax code",
     lambda w: with_lines(w, {"sku": "BOLT-1", "quantity": 1, "tax_code": "NONE"}),
     422, "invalid-order", "lines.0.tax_code"),
    ("missing lines", lambda w: {"customer_id": str(w.customer_id), "currency": "EUR"},
     422, "validation-error", "lines"),
    ("body is a list", lambda w: [order_body(w)], 422, "validation-error", "request"),
    ("reference too long", lambda w: {**order_body(w), "reference": "R" * 201},
     422, "validation-error", "reference"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "status", "slug", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_order_is_a_clear_problem_and_writes_nothing(
    client: AsyncClient, world: World, build: Any, status: int, slug: str, field: str
) -> None:
    r = await post_raw(client, world, json.dumps(build(world)).encode())
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == f"/problems/{slug}"
    fields = [e["field"] for e in problem.get("errors", [])]
    assert field in fields or (field == "request" and fields), problem
    await nothing_written(world)


async def test_every_bad_line_is_named_at_once(client: AsyncClient, world: World) -> None:
    body = with_lines(
        world,
        {"sku": "BOLT-1", "quantity": 1},
        {"sku": "GHOST", "quantity": 1},
        {"sku": "NUT-2", "quantity": 1, "tax_code": "ZZ"},
    )
    r = await post_raw(client, world, json.dumps(body).encode())
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["lines.1.sku", "lines.2.tax_code"]
    await nothing_written(world)


async def test_inactive_sku_and_inactive_customer(client: AsyncClient, world: World) -> None:
    await set_sku_active(world, "NUT-2", active=False)
    r = await post_raw(client, world, json.dumps(order_body(world)).encode())
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "field": "lines.1.sku",
        "message": "SKU 'NUT-2' is not active.",
        "type": "inactive_sku",
    }
    inactive = await make_customer(world, active=False)
    body = {**order_body(world, ("BOLT-1", 1)), "customer_id": str(inactive)}
    r = await post_raw(client, world, json.dumps(body).encode())
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "customer_id"
    await nothing_written(world)


async def test_amount_overflow_names_the_line(client: AsyncClient, world: World) -> None:
    from orders.factories import add_price_list

    async with world.db.tenant_session(world.tenant_id) as s:
        await add_price_list(s, world.tenant_id, "EUR", {"GEAR-3": 10**12})
        await s.commit()
    r = await post_raw(
        client,
        world,
        json.dumps(with_lines(world, {"sku": "GEAR-3", "quantity": 10_000})).encode(),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "lines.0.quantity"
    assert r.json()["errors"][0]["type"] == "amount_overflow"
    await nothing_written(world)


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"customer_id": ', b"\xff\xfe not json", b"", b"null garbage"],
    ids=["truncated", "half", "binary", "empty", "trailing"],
)
async def test_malformed_json(client: AsyncClient, world: World, content: bytes) -> None:
    r = await post_raw(client, world, content)
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    await nothing_written(world)


async def test_oversized_body_is_413(client: AsyncClient, world: World) -> None:
    body = {**order_body(world), "notes": "x" * 2_000_000}
    r = await post_raw(client, world, json.dumps(body).encode())
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/payload-too-large"
    await nothing_written(world)


async def test_unicode_text_round_trips(client: AsyncClient, world: World) -> None:
    text = "Ünïcødé 注文 🚚 \u202eRTL\u202c e\u0301 \U0001d54f"
    r = await client.post(
        "/v1/orders",
        json={**order_body(world), "reference": "PO-ß-Ω-№7", "notes": text},
        headers={**world.staff, "Idempotency-Key": "unicode-1"},
    )
    assert r.status_code == 201, r.text
    got = (await client.get(f"/v1/orders/{r.json()['id']}", headers=world.staff)).json()
    assert got["notes"] == unicodedata.normalize("NFC", text)  # e + U+0301 is stored as é
    assert got["reference"] == "PO-ß-Ω-№7"


async def test_nul_in_text_is_refused_cleanly(client: AsyncClient, world: World) -> None:
    r = await post_raw(
        client, world, json.dumps({**order_body(world), "notes": "a\u0000b"}).encode()
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "notes"
    await nothing_written(world)
