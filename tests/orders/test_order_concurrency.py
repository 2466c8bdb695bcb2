"""Concurrency with real commits (issue 4 §8): one key → one order; one ETag → one winner;
parallel invoice numbering → no gaps, no repeats, even when some confirmations roll back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from orders.factories import World, act, count, make_customer, order_body, place
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.orders.repository import OrdersRepository


@pytest.fixture
async def live(
    settings: Settings, committed: Database, keyring: Keyring
) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as c:
        yield c


async def test_fifty_parallel_posts_with_one_key_make_one_order(
    live: AsyncClient, committed_world: World
) -> None:
    world = committed_world
    body = order_body(world)
    responses = await asyncio.gather(
        *[place(live, world, body, key="one-key-for-all") for _ in range(50)]
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, codes
    assert await count(world.db, "SELECT count(*) FROM orders") == 1
    assert await count(world.db, "SELECT count(*) FROM order_lines") == 2
    assert await count(world.db, "SELECT count(*) FROM events WHERE type = 'order.created'") == 1
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    # Once the first commits, every retry replays it.
    replay = await place(live, world, body, key="one-key-for-all")
    assert replay.status_code == 201
    assert replay.json()["id"] in created


async def test_two_writers_with_one_etag_one_wins_one_gets_412(
    live: AsyncClient, committed_world: World
) -> None:
    world = committed_world
    order = (await place(live, world)).json()
    url = f"/v1/orders/{order['id']}"
    headers = {**world.staff, "If-Match": '"1"'}
    a, b = await asyncio.gather(
        live.patch(url, json={"notes": "writer A"}, headers=headers),
        live.patch(url, json={"notes": "writer B"}, headers=headers),
    )
    assert sorted([a.status_code, b.status_code]) == [200, 412]
    winner = a if a.status_code == 200 else b
    final = (await live.get(url, headers=world.staff)).json()
    assert final["version"] == 2
    assert final["notes"] == winner.json()["notes"]

    # The same holds for transitions: two confirmations, one invoice.
    c1, c2 = await asyncio.gather(
        act(live, final, "confirm", headers=world.staff),
        act(live, final, "confirm", headers=world.staff),
    )
    assert sorted([c1.status_code, c2.status_code]) == [200, 412]
    assert await count(world.db, "SELECT count(*) FROM invoices") == 1


async def test_parallel_confirmations_number_invoices_without_gaps(
    live: AsyncClient, committed_world: World
) -> None:
    world = committed_world
    # A customer whose credit allows one order: its other confirmations are refused and
    # roll back, interleaved with the good ones.
    tight = await make_customer(world, credit_limit_minor=6000)
    good = [(await place(live, world)).json() for _ in range(16)]
    refused = [
        (await place(live, world, {**order_body(world), "customer_id": str(tight)})).json()
        for _ in range(4)
    ]
    everything = good + refused
    random.shuffle(everything)
    results = await asyncio.gather(
        *[act(live, o, "confirm", headers=world.staff) for o in everything]
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 17  # 16 + the one order the tight customer can afford
    assert statuses.count(409) == 3
    rows = await invoice_numbers(world)
    year = utcnow().year
    assert rows == [f"INV-{year}-{n:06d}" for n in range(1, 18)]


async def invoice_numbers(world: World) -> list[str]:
    from sqlalchemy import text

    async with world.db.system_session() as s:
        result = await s.execute(
            text("SELECT number FROM invoices WHERE tenant_id = :t ORDER BY sequence"),
            {"t": world.tenant_id},
        )
        return [r[0] for r in result]


async def test_rolled_back_numbers_are_given_back(committed_world: World) -> None:
    """Twenty transactions take numbers at once; half roll back after taking theirs."""
    world = committed_world
    year = 1999  # a year of its own, so the API tests' numbers do not mix in
    taken: list[tuple[int, bool]] = []

    async def take(i: int) -> None:
        async with world.db.tenant_session(world.tenant_id) as s:
            number = await OrdersRepository(s, world.tenant_id).next_invoice_number(year)
            await asyncio.sleep(random.random() * 0.02)  # hold the counter a moment
            keep = i % 2 == 0
            taken.append((number, keep))
            if keep:
                await s.commit()
            else:
                await s.rollback()

    await asyncio.gather(*[take(i) for i in range(20)])
    kept = sorted(n for n, keep in taken if keep)
    assert kept == list(range(1, 11))
    async with world.db.tenant_session(world.tenant_id) as s:
        assert await OrdersRepository(s, world.tenant_id).next_invoice_number(year) == 11
        await s.rollback()
