"""Pricing benchmark, run on demand — not part of CI.

    .venv/bin/python bench/quotes.py [--seconds 10] [--concurrency 16] [--skus 200]

What the order hot path pays for prices: `catalog.service.quote` (one line) and
`quote_many` (a 3-line order), each in its own tenant transaction exactly as a
request runs it, from C concurrent tasks for S seconds — with the price cache
warm (in process), and with the cache off (every quote reads the candidates).
Prints quotes/s, p50 and p99.

Runs against the embedded PostgreSQL (a pgserver in a temp folder) unless
`TRADEFLOW_DATABASE_URL` names a server; either way in a fresh database that is
dropped afterwards. Seeds one tenant with a customer in a group, S SKUs on a
base list with two tiers each, a group list for every other SKU and a
contract price for every tenth — so quotes exercise every rule.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from tradeflow.catalog import cache, prices, products
from tradeflow.catalog import service as catalog
from tradeflow.catalog.schemas import ContractPriceIn, PriceListIn, ProductIn
from tradeflow.config import load_settings
from tradeflow.customers import service as customers
from tradeflow.customers.schemas import CustomerGroupIn, CustomerIn
from tradeflow.db import Database
from tradeflow.identity import service as identity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders import private_database


async def seed(db: Database, n_skus: int) -> tuple[uuid.UUID, uuid.UUID, list[str]]:
    async with db.system_session() as s:
        tenant = await identity.create_tenant(s, name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
        await s.commit()
    tid = tenant.id
    codes = [f"SKU-{i:05d}" for i in range(n_skus)]
    async with db.tenant_session(tid) as s:
        group = await customers.create_group(
            s, tid, CustomerGroupIn(name="Trade", discount_percent=Decimal("7.5"))
        )
        customer = await customers.create_customer(
            s, tid, CustomerIn(name="Bench customer", currency="EUR", group_id=group.id)
        )
        for start in range(0, n_skus, 50):
            batch = codes[start : start + 50]
            await products.create_product(
                s,
                tid,
                ProductIn.model_validate(
                    {"name": f"P{start}", "skus": [{"code": c, "name": c} for c in batch]}
                ),
            )
        base = [
            e
            for i, c in enumerate(codes)
            for e in (
                {"sku": c, "min_quantity": 1, "unit_price_minor": 1000 + i},
                {"sku": c, "min_quantity": 10, "unit_price_minor": 900 + i},
            )
        ]
        await prices.create_price_list(
            s, tid, PriceListIn.model_validate({"name": "Base", "currency": "EUR", "entries": base})
        )
        trade = [{"sku": c, "min_quantity": 5, "unit_price_minor": 800} for c in codes[::2]]
        await prices.create_price_list(
            s,
            tid,
            PriceListIn.model_validate(
                {"name": "Trade", "currency": "EUR", "customer_group_id": str(group.id),
                 "entries": trade}
            ),
        )  # fmt: skip
        for c in codes[::10]:
            await prices.create_contract_price(
                s, tid, ContractPriceIn(customer_id=customer.id, sku=c, unit_price_minor=700)
            )
        await s.commit()
    return tid, customer.id, codes


async def run(
    name: str, seconds: float, concurrency: int, op: Callable[[], Awaitable[int]]
) -> None:
    latencies: list[float] = []
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            done = await op()
            count += done
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<34} {count / elapsed:>9.0f} quotes/s {len(latencies) / elapsed:>8.0f} tx/s"
        f"   p50 {q[49] * 1000:6.2f} ms   p99 {q[98] * 1000:6.2f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    with private_database() as (_home, _server, db_url):
        db = Database(db_url, pool_size=args.concurrency, max_overflow=0)
        tid, cid, codes = await seed(db, args.skus)
        rnd = random.Random(7)

        async def one() -> int:
            async with db.tenant_session(tid) as s:
                await catalog.quote(
                    s, customer_id=cid, sku=rnd.choice(codes), quantity=rnd.randint(1, 20)
                )
                await s.rollback()
            return 1

        async def three() -> int:
            lines = [(rnd.choice(codes), rnd.randint(1, 20)) for _ in range(3)]
            async with db.tenant_session(tid) as s:
                await catalog.quote_many(s, customer_id=cid, lines=lines)
                await s.rollback()
            return 3

        settings = load_settings(database_url=db_url)
        print(f"{args.skus} SKUs, {args.concurrency} concurrent tasks, {args.seconds:.0f} s each")
        for label, ttl in (("cache warm (in process)", 300), ("cache off", 0)):
            cache.configure(settings.model_copy(update={"price_cache_ttl_seconds": ttl}))
            if ttl:  # warm every (customer, SKU) entry first
                for code in codes:
                    async with db.tenant_session(tid) as s:
                        await catalog.quote(s, customer_id=cid, sku=code, quantity=1)
            await run(f"quote, {label}", args.seconds, args.concurrency, one)
            await run(f"quote_many ×3, {label}", args.seconds, args.concurrency, three)
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skus", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
