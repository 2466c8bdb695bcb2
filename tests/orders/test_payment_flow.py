"""The real wiring: payment events published through the outbox reach the orders handler via
the worker, and the order moves to partially_paid, then paid."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from httpx import ASGITransport, AsyncClient

from events.support import FAST, eventually, running_worker
from orders.factories import World, act, order_body, place
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.outbox import publish
from tradeflow.kit.keyring import Keyring
from tradeflow.payments.events import PaymentCaptured


@pytest.fixture
async def live(
    settings: Settings, committed: Database, keyring: Keyring
) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as c:
        yield c


async def test_captures_through_the_worker_mark_the_order_paid_once(
    live: AsyncClient, committed_world: World, settings: Settings, keyring: Keyring
) -> None:
    world = committed_world
    order = await place(live, world, order_body(world, ("BOLT-1", 1)))  # 1,200 with tax
    invoiced = (await act(live, order, "confirm", headers=world.staff)).json()
    payment_id = uuid.uuid4()

    async def capture(amount: int, total: int) -> None:
        async with world.db.tenant_session(world.tenant_id) as s:
            await publish(
                s,
                PaymentCaptured(
                    payment_id=payment_id,
                    invoice_id=invoiced["invoice_id"],
                    order_id=invoiced["id"],
                    customer_id=world.customer_id,
                    processor="sandbox",
                    amount_minor=amount,
                    currency="EUR",
                    amount_captured_total_minor=total,
                ),
                tenant_id=world.tenant_id,
                aggregate_id=payment_id,
            )
            await s.commit()

    def status_is(wanted: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            r = await live.get(f"/v1/orders/{invoiced['id']}", headers=world.staff)
            return bool(r.json()["status"] == wanted)

        return check

    async with running_worker(settings, world.db, keyring, **FAST):
        await capture(700, 700)
        assert await eventually(status_is("partially_paid"))
        await capture(500, 1200)
        assert await eventually(status_is("paid"))
    inv = (await live.get(f"/v1/invoices/{invoiced['invoice_id']}", headers=world.staff)).json()
    assert (inv["status"], inv["amount_paid_minor"], inv["amount_due_minor"]) == ("paid", 1200, 0)
