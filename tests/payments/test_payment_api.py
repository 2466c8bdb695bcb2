"""Paying invoices through the sandbox processor over the API: automatic and manual capture,
partial captures, refunds, declines, idempotency — against the real sandbox process."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from orders.factories import World, buyer_headers, make_buyer, make_customer
from payments.factories import Merchant, invoiced_order, pay
from payments.support import rows, scalar
from tradeflow.db import Database


async def payment_events(db: Database, payment_id: str) -> list[tuple[str, int]]:
    found = await rows(
        db,
        "SELECT type, (payload->>'amount_minor')::int FROM events "
        "WHERE aggregate_type = 'payment' AND aggregate_id = :p ORDER BY sequence",
        p=payment_id,
    )
    return [(r[0], r[1]) for r in found]


async def test_automatic_capture_pays_the_invoice_in_full(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    r = await pay(client, world, order["invoice_id"])
    assert r.status_code == 201, r.text
    payment = r.json()
    assert r.headers["location"] == f"/v1/payments/{payment['id']}"
    assert payment["status"] == "captured"
    assert payment["amount_minor"] == payment["amount_captured_minor"] == 1200
    assert payment["currency"] == "EUR"
    assert payment["order_id"] == order["id"]
    assert payment["customer_id"] == str(world.customer_id)
    charges = await merchant.charges()
    assert [(c["reference"], c["amount_captured"]) for c in charges] == [(payment["id"], 1200)]
    assert payment["processor_payment_id"] == charges[0]["id"]
    assert await payment_events(world.db, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
    ]
    got = await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)
    assert got.json()["status"] == "captured"
    listed = await client.get(
        "/v1/payments", params={"invoice_id": order["invoice_id"]}, headers=world.staff
    )
    assert [p["id"] for p in listed.json()["items"]] == [payment["id"]]
    # Nothing is left open on the invoice: a second intent is refused.
    again = await pay(client, world, order["invoice_id"])
    assert again.status_code == 409, again.text


async def test_manual_capture_in_parts_then_refunds(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    r = await pay(client, world, order["invoice_id"], capture_method="manual")
    payment = r.json()
    assert payment["status"] == "requires_capture"
    assert payment["amount_capturable_minor"] == 1200
    url = f"/v1/payments/{payment['id']}/capture"
    first = await client.post(url, json={"amount_minor": 500}, headers=world.staff)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "partially_captured"
    assert first.json()["amount_capturable_minor"] == 700
    too_much = await client.post(url, json={"amount_minor": 701}, headers=world.staff)
    assert too_much.status_code == 422
    assert too_much.json()["field"] == "amount_minor"
    rest = await client.post(url, headers=world.staff)
    assert rest.json()["status"] == "captured"
    assert [c["amount_minor"] for c in rest.json()["captures"]] == [500, 700]
    assert {c["status"] for c in rest.json()["captures"]} == {"succeeded"}
    nothing_left = await client.post(url, headers=world.staff)
    assert nothing_left.status_code == 409
    assert nothing_left.json()["payment_status"] == "captured"

    refund = await client.post(
        "/v1/refunds",
        json={"payment_id": payment["id"], "amount_minor": 200, "reason": "damaged"},
        headers={**world.staff, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "succeeded"
    assert refund.json()["processor_refund_id"]
    over = await client.post(
        "/v1/refunds",
        json={"payment_id": payment["id"], "amount_minor": 1001},
        headers=world.staff,
    )
    assert over.status_code == 422
    assert over.json()["field"] == "amount_minor"
    rest_refund = await client.post(
        "/v1/refunds", json={"payment_id": payment["id"]}, headers=world.staff
    )
    assert rest_refund.json()["amount_minor"] == 1000
    final = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert final["status"] == "refunded"
    assert final["amount_refunded_minor"] == 1200
    assert await payment_events(world.db, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.authorized", 1200),
        ("payment.captured", 500),
        ("payment.captured", 700),
        ("refund.succeeded", 200),
        ("refund.succeeded", 1000),
    ]
    listed = await client.get(
        "/v1/refunds", params={"payment_id": payment["id"]}, headers=world.staff
    )
    assert [x["amount_minor"] for x in listed.json()["items"]] == [1000, 200]
    sandbox_charge = (await merchant.charges())[0]
    assert sandbox_charge["amount_refunded"] == 1200
    assert len(sandbox_charge["captures"]) == 2


async def test_decline_fails_the_payment_and_leaves_the_invoice_open(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    r = await pay(client, world, order["invoice_id"], payment_method="pm_sandbox_decline")
    assert r.status_code == 201, r.text
    declined = r.json()
    assert declined["status"] == "failed"
    assert declined["failure_code"] == "card_declined"
    assert declined["amount_captured_minor"] == 0
    assert await payment_events(world.db, declined["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.failed", 1200),
    ]
    # A failed payment holds nothing: the invoice can be paid in full right away.
    retry = await pay(client, world, order["invoice_id"])
    assert retry.json()["status"] == "captured"
    assert retry.json()["amount_minor"] == 1200
    assert len(await merchant.charges()) == 2


async def test_idempotency_key_replays_without_charging_twice(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    first = await pay(client, world, order["invoice_id"], key="pay-once", amount_minor=500)
    again = await pay(client, world, order["invoice_id"], key="pay-once", amount_minor=500)
    assert again.status_code == first.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await pay(client, world, order["invoice_id"], key="pay-once", amount_minor=600)
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    assert len(await merchant.charges()) == 1


async def test_bad_input_is_named_and_leaves_nothing(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    cases = [
        ({"invoice_id": order["invoice_id"], "payment_method": "x", "tip": 1}, "tip"),
        ({"invoice_id": "nope", "payment_method": "pm_sandbox_ok"}, "invoice_id"),
        (
            {
                "invoice_id": order["invoice_id"],
                "payment_method": "pm_sandbox_ok",
                "amount_minor": -5,
            },
            "amount_minor",
        ),
        (
            {
                "invoice_id": order["invoice_id"],
                "payment_method": "pm_sandbox_ok",
                "amount_minor": 10**30,
            },
            "amount_minor",
        ),
        ({"invoice_id": str(uuid.uuid4()), "payment_method": "pm_sandbox_ok"}, "invoice_id"),
        (
            {
                "invoice_id": order["invoice_id"],
                "payment_method": "pm_sandbox_ok",
                "amount_minor": 1201,
            },
            "amount_minor",
        ),
        (
            {
                "invoice_id": order["invoice_id"],
                "payment_method": "pm_sandbox_ok",
                "currency": "USD",
            },
            "currency",
        ),
        # Refused by the processor itself: still named, still nothing written.
        ({"invoice_id": order["invoice_id"], "payment_method": "pm_made_up"}, "payment_method"),
    ]
    for body, field in cases:
        r = await client.post("/v1/payments", json=body, headers=world.staff)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in r.json().get("errors", [])]
        assert field in fields, (body, r.json())
    assert (
        await scalar(
            world.db, "SELECT count(*) FROM payments WHERE tenant_id = :t", t=world.tenant_id
        )
        == 0
    )
    assert (
        await scalar(
            world.db,
            "SELECT count(*) FROM events WHERE tenant_id = :t AND aggregate_type = 'payment'",
            t=world.tenant_id,
        )
        == 0
    )
    assert await merchant.charges() == []


async def test_buyers_pay_their_own_invoices_only(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    buyer = await buyer_headers(client, world, await make_buyer(world))
    r = await pay(client, world, order["invoice_id"], headers=buyer, capture_method="manual")
    assert r.status_code == 201, r.text
    payment = r.json()
    listed = await client.get("/v1/payments", headers=buyer)
    assert [p["id"] for p in listed.json()["items"]] == [payment["id"]]
    capture = await client.post(f"/v1/payments/{payment['id']}/capture", headers=buyer)
    assert capture.status_code == 403
    refund = await client.post("/v1/refunds", json={"payment_id": payment["id"]}, headers=buyer)
    assert refund.status_code == 403

    other_customer = await make_customer(world)
    stranger = await buyer_headers(
        client, world, await make_buyer(world, customer_id=other_customer)
    )
    assert (await client.get(f"/v1/payments/{payment['id']}", headers=stranger)).status_code == 404
    assert (await client.get("/v1/payments", headers=stranger)).json()["items"] == []
    foreign = await pay(client, world, order["invoice_id"], headers=stranger)
    assert foreign.status_code == 422
    assert foreign.json()["field"] == "invoice_id"


async def test_without_an_enabled_processor_nothing_is_recorded(
    client: AsyncClient, world: World
) -> None:
    order = await invoiced_order(client, world)
    r = await pay(client, world, order["invoice_id"])
    assert r.status_code == 422
    assert r.json()["type"].endswith("processor-not-configured")
    assert (
        await scalar(
            world.db, "SELECT count(*) FROM payments WHERE tenant_id = :t", t=world.tenant_id
        )
        == 0
    )
