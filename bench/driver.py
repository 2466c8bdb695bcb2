"""Async driver benchmark for ADR 0002: asyncpg vs psycopg 3, both through SQLAlchemy 2 async.

    .venv/bin/python bench/driver.py [--seconds 10] [--concurrency 1,16] [--rounds 2]
                                     [--loop asyncio|uvloop|both]

Each transaction is the shape of Tradeflow's hot path: a pooled `AsyncSession`
enters a tenant exactly as `Database.tenant_session` does (`set_config` of the
row-level-security role and `app.tenant_id`), inserts a row into a table under
the tenant RLS policy, reads it back by primary key, and commits.

Runs against the embedded PostgreSQL (a pgserver in a temp folder) unless
`TRADEFLOW_DATABASE_URL` names a server; either way in a fresh database that is
dropped afterwards. Drivers alternate round by round so neither always runs on
a warmer server. Prints tx/s, latency p50/p99, and the benchmark process's own
CPU per transaction — on a small machine the driver's CPU is taken from
PostgreSQL's, so it matters as much as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Uuid, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tradeflow.db import enter_tenant
from tradeflow.kit.ids import uuid7
from tradeflow.migrations import upgrade

APP_ROLE = "tradeflow_app"
TENANTS = [uuid.uuid4() for _ in range(8)]

metadata = MetaData()
bench_orders = Table(
    "bench_orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
)

DDL = f"""
CREATE TABLE bench_orders (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    reference varchar(40) NOT NULL,
    total_minor bigint NOT NULL,
    currency char(3) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON bench_orders (tenant_id);
ALTER TABLE bench_orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bench_orders
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT ON bench_orders TO {APP_ROLE};
"""


@dataclass
class Result:
    driver: str
    loop: str
    concurrency: int
    transactions: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float
    errors: int

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@contextmanager
def server() -> Iterator[str]:
    external = os.environ.get("TRADEFLOW_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-driver-") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            yield pg.get_uri()
        finally:
            pg.cleanup()


def _connect(url: str, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    u = make_url(url)
    host = u.query.get("host", u.host) if u.query else u.host
    return psycopg.connect(
        dbname=dbname or u.database or "postgres",
        user=u.username,
        password=u.password,
        host=host if isinstance(host, str) else None,
        port=u.port,
        autocommit=True,
    )


@contextmanager
def bench_database(server_url: str, synchronous_commit: str) -> Iterator[str]:
    name = f"bench_driver_{uuid.uuid4().hex[:8]}"
    with _connect(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, revision="base_0001")  # the roles, as Tradeflow creates them
        with _connect(url, name) as conn:
            conn.execute(DDL)
            # `off` takes the WAL flush out of each commit, leaving the drivers' own cost.
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}')
        yield url
    finally:
        with _connect(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(url: str, driver: str, loop_name: str, concurrency: int, seconds: float) -> Result:
    engine = create_async_engine(
        make_url(url).set(drivername=f"postgresql+{driver}"),
        pool_size=concurrency,
        max_overflow=0,
        pool_pre_ping=True,  # as in tradeflow.db.Database
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    latencies: list[float] = []
    errors = 0

    async def transaction() -> None:
        tenant = random.choice(TENANTS)
        order_id = uuid7()
        async with sessions() as session:
            await enter_tenant(session, tenant, app_role=APP_ROLE)
            await session.execute(
                insert(bench_orders).values(
                    id=order_id,
                    tenant_id=tenant,
                    reference=f"PO-{order_id.hex[:12]}",
                    total_minor=random.randint(100, 10_000_000),
                    currency="EUR",
                )
            )
            row = (
                await session.execute(
                    select(bench_orders.c.id, bench_orders.c.total_minor).where(
                        bench_orders.c.id == order_id
                    )
                )
            ).one()
            assert row.id == order_id
            await session.commit()

    async def client(until: float, record: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                await transaction()
            except Exception as exc:  # counted, and the first few shown
                errors += 1
                if errors <= 3:
                    print(f"  {driver}: {exc!r}", file=sys.stderr)
                continue
            if record:
                latencies.append(time.perf_counter() - started)

    # Warm-up: open every pooled connection and let both sides prepare their statements.
    warm_until = time.perf_counter() + min(2.0, seconds / 5)
    await asyncio.gather(*(client(warm_until, record=False) for _ in range(concurrency)))

    cpu_before = time.process_time()
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(client(until, record=True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    await engine.dispose()
    return Result(driver, loop_name, concurrency, len(latencies), elapsed, latencies, cpu, errors)


def run_in_loop(loop_name: str, *args: object) -> Result:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(run(*args))  # type: ignore[arg-type]
    return asyncio.run(run(*args))  # type: ignore[arg-type]


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(
        f"{p} {version(p)}"
        for p in ("sqlalchemy", "asyncpg", "psycopg", "psycopg-binary", "uvloop")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated task counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on")
    args = parser.parse_args()
    # Stopped early, still drop the database and stop the embedded server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(f"# {versions()}")
    results: list[Result] = []
    print(f"# synchronous_commit = {args.synchronous_commit}")
    with server() as server_url, bench_database(server_url, args.synchronous_commit) as url:
        with _connect(url) as conn:
            print(f"# PostgreSQL {conn.execute('SHOW server_version').fetchone()[0]}")  # type: ignore[index]
        for loop_name in loops:
            for concurrency in concurrencies:
                for round_no in range(args.rounds):
                    order = ["asyncpg", "psycopg"]
                    if round_no % 2:
                        order.reverse()
                    for driver in order:
                        r = run_in_loop(
                            loop_name, url, driver, loop_name, concurrency, args.seconds
                        )
                        results.append(r)
                        print(
                            f"  {loop_name:7} c={concurrency:<3} {driver:8} round {round_no + 1}: "
                            f"{r.tps:7.0f} tx/s  p50 {r.percentile(0.5):6.2f} ms  "
                            f"p99 {r.percentile(0.99):6.2f} ms  errors {r.errors}",
                            file=sys.stderr,
                        )

    print()
    print("| loop | tasks | driver | tx/s | p50 ms | p99 ms | client CPU µs/tx | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for loop_name in loops:
        for concurrency in concurrencies:
            for driver in ("asyncpg", "psycopg"):
                rs = [
                    r
                    for r in results
                    if (r.loop, r.concurrency, r.driver) == (loop_name, concurrency, driver)
                ]
                merged = Result(
                    driver,
                    loop_name,
                    concurrency,
                    sum(r.transactions for r in rs),
                    sum(r.seconds for r in rs),
                    [x for r in rs for x in r.latencies],
                    sum(r.cpu_seconds for r in rs),
                    sum(r.errors for r in rs),
                )
                spread = [r.tps for r in rs]
                note = f" (rounds {', '.join(f'{t:.0f}' for t in spread)})" if len(rs) > 1 else ""
                print(
                    f"| {loop_name} | {concurrency} | {driver} | {merged.tps:.0f}{note} | "
                    f"{merged.percentile(0.5):.2f} | {merged.percentile(0.99):.2f} | "
                    f"{merged.cpu_seconds / max(1, merged.transactions) * 1e6:.0f} | "
                    f"{merged.errors} |"
                )


if __name__ == "__main__":
    main()
