"""Payment facts move invoices and orders: partially_paid → paid → refunded, idempotently,
whatever order the facts arrive in."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from orders.factories import World, act, event_types, order_body, place
from tradeflow.events.registry import DeliveredEvent, HandlerContext
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.orders.handlers import on_payment_fact


async def confirmed_order(client: AsyncClient, world: World) -> dict[str, Any]:
    order = await place(client, world, order_body(world, ("BOLT-1", 1)))  # 1000 + 200 tax
    r = await act(client, order, "confirm", headers=world.staff)
    assert r.status_code == 200, r.text
    return r.json()


async def deliver(
    world: World,
    order: dict[str, Any],
    event_type: str,
    amount: int,
    *,
    event_id: uuid.UUID | None = None,
    currency: str = "EUR",
) -> uuid.UUID:
    """Run the orders handler on one payment event, in its own committed transaction."""
    event = DeliveredEvent(
        id=event_id or uuid7(),
        tenant_id=world.tenant_id,
        type=event_type,
        version=1,
        aggregate_type="payment",
        aggregate_id=str(uuid.uuid4()),
        sequence=1,
        occurred_at=utcnow(),
        payload={
            "payment_id": str(uuid.uuid4()),
            "invoice_id": order["invoice_id"],
            "order_id": order["id"],
            "amount_minor": amount,
            "currency": currency,
        },
    )
    async with world.db.tenant_session(world.tenant_id) as s:
        await on_payment_fact(HandlerContext(session=s, event=event, attempt=1))
        await s.commit()
    return event.id


async def state(client: AsyncClient, world: World, order: dict[str, Any]) -> tuple[str, str, int]:
    o = (await client.get(f"/v1/orders/{order['id']}", headers=world.staff)).json()
    inv = (await client.get(f"/v1/invoices/{order['invoice_id']}", headers=world.staff)).json()
    return o["status"], inv["status"], inv["amount_paid_minor"]


async def test_partial_then_full_payment_then_fulfil(client: AsyncClient, world: World) -> None:
    order = await confirmed_order(client, world)
    await deliver(world, order, "payment.captured", 500)
    assert await state(client, world, order) == ("partially_paid", "partially_paid", 500)
    await deliver(world, order, "payment.captured", 200)
    assert await state(client, world, order) == ("partially_paid", "partially_paid", 700)
    await deliver(world, order, "payment.captured", 500)
    assert await state(client, world, order) == ("paid", "paid", 1200)
    got = (await client.get(f"/v1/orders/{order['id']}", headers=world.staff)).json()
    assert got["paid_at"] is not None
    assert got["actions"] == ["fulfil"]
    assert (await act(client, got, "fulfil", headers=world.staff)).json()["status"] == "fulfilled"
    assert (await event_types(world.db, order["id"]))[-5:] == [
        "order.invoiced",
        "order.partially_paid",
        "order.partially_paid",
        "order.paid",
        "order.fulfilled",
    ]


async def test_the_same_event_twice_counts_once(client: AsyncClient, world: World) -> None:
    order = await confirmed_order(client, world)
    event_id = await deliver(world, order, "payment.captured", 1200)
    await deliver(world, order, "payment.captured", 1200, event_id=event_id)
    assert await state(client, world, order) == ("paid", "paid", 1200)
    assert (await event_types(world.db, order["id"])).count("order.paid") == 1


async def test_failed_payment_changes_nothing(client: AsyncClient, world: World) -> None:
    order = await confirmed_order(client, world)
    await deliver(world, order, "payment.failed", 1200)
    assert await state(client, world, order) == ("invoiced", "open", 0)


async def test_full_refund_after_payment_and_refund_before_capture(
    client: AsyncClient, world: World
) -> None:
    order = await confirmed_order(client, world)
    await deliver(world, order, "payment.captured", 1200)
    await deliver(world, order, "refund.succeeded", 200)  # partial refund: still paid
    assert await state(client, world, order) == ("paid", "paid", 1200)
    await deliver(world, order, "refund.succeeded", 1000)
    assert await state(client, world, order) == ("refunded", "refunded", 1200)

    # Out of order: the refund's webhook overtook the capture's.
    late = await confirmed_order(client, world)
    await deliver(world, late, "refund.succeeded", 1200)
    assert await state(client, world, late) == ("invoiced", "open", 0)
    await deliver(world, late, "payment.captured", 1200)
    assert await state(client, world, late) == ("refunded", "refunded", 1200)
    assert (await event_types(world.db, late["id"]))[-2:] == ["order.paid", "order.refunded"]


async def test_payment_on_a_cancelled_order_is_recorded_without_a_state_change(
    client: AsyncClient, world: World
) -> None:
    order = await confirmed_order(client, world)
    r = await act(client, order, "cancel", headers=world.staff)
    assert r.json()["status"] == "cancelled"
    await deliver(world, order, "payment.captured", 1200)
    assert await state(client, world, order) == ("cancelled", "void", 1200)


async def test_wrong_currency_or_unknown_invoice_fails_loudly(
    client: AsyncClient, world: World
) -> None:
    order = await confirmed_order(client, world)
    with pytest.raises(ValueError, match="USD"):
        await deliver(world, order, "payment.captured", 1200, currency="USD")
    with pytest.raises(LookupError):
        await deliver(world, {**order, "invoice_id": str(uuid.uuid4())}, "payment.captured", 1)
    assert await state(client, world, order) == ("invoiced", "open", 0)
