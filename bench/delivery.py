"""Delivery benchmark (issue 3 §10), run on demand — not part of CI.

    .venv/bin/python bench/delivery.py [--backlog 20000] [--seconds 10] [--workers 1]
                                       [--rates 500,1000,2000]

1. Starts an embedded PostgreSQL (or uses TRADEFLOW_DATABASE_URL's server), creates a fresh
   database, migrates it, and creates a tenant and one webhook endpoint through the services.
2. Starts a local HTTP sink (its own process, a minimal keep-alive HTTP/1.1 server on
   127.0.0.1) that answers 204 and records when each `webhook-id` arrived.
3. **Drain**: publishes a backlog with no worker running, starts `tradeflow worker`
   process(es), and waits until every delivery is marked delivered. The rate is the
   backlog over the span from the first delivery marked delivered to the last (the
   database's clock); the wall time including the workers' start-up is shown beside it.
4. **Sustained**: for each rate, publishes at that rate for S seconds (a transaction every
   10 ms with rate/100 events, the product's own publish SQL) while the worker runs, then
   reports the latency commit → sink received it (2xx) → marked delivered, p50/p99.
5. **Ceiling**: pgbench on the same database running the equivalent claim-and-complete
   SQL (lease 50 due deliveries with SKIP LOCKED in one transaction; mark them delivered and
   insert their attempt rows in a second), as deliveries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
GOALS = {"drain_per_s": 3000, "sustained_rate": 2000, "p99_ms": 50.0}

from orders import conninfo, create_database, drop_database, start_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the sink (runs as `delivery.py --sink PORT OUT`) ----
class SinkProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1: keep-alive, Content-Length bodies, a 204 answer."""

    seen: dict[str, float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            msg_id = ""
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "webhook-id":
                    msg_id = value.strip()
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.seen.setdefault(msg_id, time.time())
            self.transport.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")  # type: ignore[attr-defined]


def run_sink(port: int, out: Path) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=1024)
        await stop.wait()
        server.close()
        out.write_text(json.dumps(SinkProtocol.seen))

    asyncio.run(main())


# -- set-up ----
async def seed(url: str, home: Path, sink_url: str, in_flight: int) -> tuple[uuid.UUID, uuid.UUID]:
    from tradeflow.config import load_settings
    from tradeflow.db import Database
    from tradeflow.identity import service as identity
    from tradeflow.kit.keyring import load_keyring
    from tradeflow.webhooks import service as webhooks

    settings = load_settings(database_url=url, home=home, webhooks_allow_private=True)
    db = Database.from_settings(settings, url)
    try:
        async with db.system_session() as s:
            tenant = await identity.create_tenant(s, name="Bench seller", slug="bench")
            await s.commit()
        async with db.tenant_session(tenant.id) as s:
            view, _ = await webhooks.create_endpoint(
                s,
                tenant.id,
                settings=settings,
                keyring=load_keyring(settings),
                url=sink_url,
                event_types=["bench.*"],
                max_in_flight=in_flight,
            )
            await s.commit()
        return tenant.id, view.endpoint.id
    finally:
        await db.dispose()


PUBLISH = """
WITH stream AS (
  INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
  VALUES ($1, 'bench', $2, 1)
  ON CONFLICT (tenant_id, aggregate_type, aggregate_id)
  DO UPDATE SET last_sequence = es.last_sequence + 1
  RETURNING last_sequence
)
INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence,
                    occurred_at, payload)
SELECT $3, $1, 'bench.happened', 1, 'bench', $2, stream.last_sequence, now(), $4::jsonb
FROM stream
"""


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


_COUNTER = [0]


async def publish(conn: Any, tenant: uuid.UUID, n: int, per_aggregate: int) -> list[uuid.UUID]:
    """`n` events in one transaction; consecutive events share an aggregate, `per_aggregate`
    at a time (an order's lifecycle), so ordering applies without serialising everything."""
    from tradeflow.kit.ids import uuid7

    ids = [uuid7() for _ in range(n)]
    start = _COUNTER[0]
    _COUNTER[0] += n
    async with conn.transaction():
        await conn.executemany(
            PUBLISH,
            [
                (tenant, f"a{(start + i) // per_aggregate}", eid, json.dumps({"n": start + i}))
                for i, eid in enumerate(ids)
            ],
        )
    return ids


def spawn_workers(
    url: str, home: Path, count: int, in_flight: int
) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "TRADEFLOW_DATABASE_URL": url,
        "TRADEFLOW_HOME": str(home),
        "TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE": "true",
        "TRADEFLOW_DELIVERY_CONCURRENCY": str(in_flight),
        "TRADEFLOW_DELIVERY_BATCH_SIZE": "200",
        "TRADEFLOW_DELIVERY_MAX_IN_FLIGHT_PER_ENDPOINT": str(in_flight),
        "TRADEFLOW_DELIVERY_POLL_SECONDS": "0.5",
        "TRADEFLOW_DELIVERY_FLUSH_SECONDS": "0.005",
        "TRADEFLOW_SCHEDULER_ENABLED": "false",
        "TRADEFLOW_LOG_LEVEL": "warning",
    }
    profile_dir = os.environ.get("BENCH_PROFILE")
    procs = []
    for n in range(count):
        cmd = [sys.executable, "-m", "tradeflow", "worker"]
        if profile_dir:
            # A cProfile of each worker, written when it exits on SIGTERM.
            cmd[1:1] = ["-m", "cProfile", "-o", str(Path(profile_dir) / f"worker{n}.prof")]
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (those that have exited count as 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def postgres_pids(server: Any) -> list[int]:
    """The embedded server's postmaster and its children (backends, walwriter, ...)."""
    if server is None:
        return []
    pidfile = Path(server.pgdata) / "postmaster.pid"
    try:
        master = psutil.Process(int(pidfile.read_text().split()[0]))
    except (OSError, ValueError, psutil.NoSuchProcess):
        return []
    return [master.pid, *(c.pid for c in master.children(recursive=True))]


async def wait_delivered(
    conn: Any,
    endpoint: uuid.UUID,
    expected: int,
    timeout: float,
    first: Callable[[int], None] | None = None,
) -> float:
    """Seconds until nothing is left to deliver and `expected` deliveries are delivered;
    `first(n)` at the first progress.

    Polls what is left (undispatched events, pending deliveries: both on partial
    indexes, so the poll costs little while the backlog shrinks) rather than counting
    the delivered, which would scan the whole table ten times a second and bill the
    database's CPU for the benchmark's own bookkeeping."""
    start = time.perf_counter()
    backlog: int | None = None
    while time.perf_counter() - start < timeout:
        left = await conn.fetchval(
            "SELECT (SELECT count(*) FROM events WHERE dispatched_at IS NULL)"
            " + (SELECT count(*) FROM deliveries"
            "    WHERE subscriber_id = $1 AND status = 'pending')",
            endpoint,
        )
        backlog = left if backlog is None else backlog
        if first is not None and left < backlog:
            first(backlog - left)
            first = None
        if left == 0:
            elapsed = time.perf_counter() - start
            delivered = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE subscriber_id = $1 AND status = 'delivered'",
                endpoint,
            )
            if delivered != expected:
                raise RuntimeError(f"{delivered} deliveries delivered, {expected} expected")
            return elapsed
        await asyncio.sleep(0.1)
    raise TimeoutError(f"deliveries still pending after {timeout}s")


async def drain_span(conn: Any, endpoint: uuid.UUID) -> float:
    """Seconds from the first delivery marked delivered to the last, by the database's clock."""
    span: float = await conn.fetchval(
        "SELECT extract(epoch FROM max(delivered_at) - min(delivered_at)) FROM deliveries "
        "WHERE subscriber_id = $1",
        endpoint,
    )
    return span


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- pgbench ceiling ----
PGBENCH_SCRIPT = """\\set n 50
BEGIN;
WITH c AS (
  SELECT id FROM deliveries
  WHERE subscriber_id = '{sid}' AND status = 'pending' AND ready
    AND next_attempt_at <= now() AND leased_until IS NULL
  ORDER BY next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED
), leased AS (
  UPDATE deliveries d SET leased_until = now() + interval '60 seconds',
         lease_owner = 'pgbench', claims = d.claims + 1
  FROM c WHERE d.id = c.id RETURNING d.id
)
SELECT coalesce(array_agg(id)::text, '{{}}') AS ids FROM leased \\gset
COMMIT;
BEGIN;
WITH done AS (
  UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, leased_until = NULL,
         lease_owner = NULL, last_attempt_at = now(), last_status_code = 204,
         delivered_at = now()
  WHERE id = ANY(CAST(':ids' AS uuid[])) AND claims >= 1
  RETURNING id, tenant_id
)
INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, started_at, duration_ms,
                               outcome, status_code)
SELECT tenant_id, id, 1, now(), 1.0, 'success', 204 FROM done;
COMMIT;
"""


def pgbench_ceiling(url: str, server: Any, tenant: uuid.UUID, seconds: int, clients: int) -> float:
    """Claim-and-complete SQL on a fresh backlog, deliveries/s (50 per pgbench transaction)."""
    rows = 400_000
    sid = uuid.uuid4()
    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO subscribers (id, tenant_id, kind, name, event_types) "
            "VALUES (%s, %s, 'webhook', 'pgbench', '{pgbench.none}')",
            (sid, tenant),
        )
        conn.execute(
            """
            INSERT INTO events (id, tenant_id, type, aggregate_type, aggregate_id, sequence,
                                payload, dispatched_at)
            SELECT tradeflow_uuid7(), %s, 'pgbench.x', 'pgb', 'a' || g, 1, '{}', now()
            FROM generate_series(1, %s) g
            """,
            (tenant, rows),
        )
        conn.execute(
            """
            INSERT INTO deliveries (tenant_id, event_id, subscriber_id, event_type, aggregate,
                                    sequence, ready)
            SELECT tenant_id, id, %s, type, aggregate_type || ':' || aggregate_id, sequence, true
            FROM events WHERE type = 'pgbench.x'
            """,
            (sid,),
        )
        conn.execute("VACUUM ANALYZE deliveries")
    script = Path(tempfile.mkstemp(suffix=".sql")[1])
    script.write_text(PGBENCH_SCRIPT.format(sid=sid))
    ci = conninfo(url)
    pgbench = _pg_bin("pgbench")
    cmd = [
        pgbench,
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-T",
        str(seconds),
        "-h",
        str(ci["host"]),
        "-U",
        str(ci["user"]),
        ci["dbname"],
    ]
    if ci.get("port"):
        cmd += ["-p", str(ci["port"])]
    env = {**os.environ, "PGPASSWORD": ci.get("password") or ""}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    script.unlink()
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1)) * 50


def _pg_bin(name: str) -> str:
    import pgserver

    found = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    return str(found) if found.exists() else (shutil.which(name) or name)


# -- the run ----
async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="tf-bench-delivery-"))
    server_url, server = start_server(home)
    url = create_database(server_url)
    results: dict[str, Any] = {}
    sink_out = home / "sink.json"
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port), str(sink_out)])
    workers: list[subprocess.Popen[bytes]] = []
    try:
        from tradeflow.migrations import upgrade

        upgrade(url)
        tenant, endpoint = await seed(
            url, home, f"http://127.0.0.1:{sink_port}/hook", args.in_flight
        )
        conn = await asyncpg.connect(plain(url))

        # Drain: a backlog first, then the workers.
        for _ in range(args.backlog // 1000):
            await publish(conn, tenant, 1000, per_aggregate=4)
        workers = spawn_workers(url, home, args.workers, args.in_flight)
        # CPU per delivered event — the figure to compare while the machine is shared —
        # counted from the first delivery on, so the workers' start-up is left out.
        first: dict[str, Any] = {}

        def on_first(n: int) -> None:
            first.update(
                n=n,
                worker=cpu_seconds([w.pid for w in workers]),
                pg={pid: cpu_seconds([pid]) for pid in postgres_pids(server)},
            )

        elapsed = await wait_delivered(conn, endpoint, args.backlog, timeout=600, first=on_first)
        # The rate while draining: first delivery to last. Worker start-up (imports,
        # connections: about a second) comes before the first and is shown apart.
        results["drain_per_s"] = round((args.backlog - 1) / await drain_span(conn, endpoint))
        results["drain_wall_s_with_startup"] = round(elapsed, 2)
        worker_cpu = cpu_seconds([w.pid for w in workers]) - first["worker"]
        pg_cpu = sum(
            cpu_seconds([pid]) - first["pg"].get(pid, 0.0) for pid in postgres_pids(server)
        )
        counted = args.backlog - first["n"]
        results["drain_worker_cpu_ms_per_event"] = round(worker_cpu * 1000 / counted, 3)
        results["drain_postgres_cpu_ms_per_event"] = round(pg_cpu * 1000 / counted, 3)
        results["load_average"] = [round(x, 2) for x in os.getloadavg()]

        # Sustained rates.
        done = args.backlog
        commits: dict[str, float] = {}
        phases: list[tuple[int, list[uuid.UUID]]] = []
        for rate in args.rates:
            cpu_before = cpu_seconds([w.pid for w in workers])
            pg_before = {pid: cpu_seconds([pid]) for pid in postgres_pids(server)}
            per_tick = max(1, rate // 100)
            ids: list[uuid.UUID] = []
            start = time.perf_counter()
            tick = 0
            while time.perf_counter() - start < args.seconds:
                batch = await publish(conn, tenant, per_tick, per_aggregate=1)
                now = time.time()
                for eid in batch:
                    commits[str(eid)] = now
                ids += batch
                tick += 1
                delay = start + tick * 0.01 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            achieved = len(ids) / (time.perf_counter() - start)
            done += len(ids)
            await wait_delivered(conn, endpoint, done, timeout=300)
            phases.append((rate, ids))
            results[f"rate_{rate}_published_per_s"] = round(achieved)
            worker_cpu = cpu_seconds([w.pid for w in workers]) - cpu_before
            pg_cpu = sum(
                cpu_seconds([pid]) - pg_before.get(pid, 0.0) for pid in postgres_pids(server)
            )
            results[f"rate_{rate}_worker_cpu_ms_per_event"] = round(worker_cpu * 1000 / len(ids), 3)
            results[f"rate_{rate}_postgres_cpu_ms_per_event"] = round(pg_cpu * 1000 / len(ids), 3)
        rows = await conn.fetch(
            "SELECT event_id, extract(epoch FROM delivered_at) AS at FROM deliveries "
            "WHERE subscriber_id = $1",
            endpoint,
        )
        delivered = {str(r["event_id"]): float(r["at"]) for r in rows}
        await conn.close()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=30)
    seen: dict[str, float] = json.loads(sink_out.read_text()) if sink_out.exists() else {}
    for rate, ids in phases:
        to_sink = [(seen[str(i)] - commits[str(i)]) * 1000 for i in ids if str(i) in seen]
        to_marked = [(delivered[str(i)] - commits[str(i)]) * 1000 for i in ids]
        results[f"rate_{rate}"] = {
            "sink_p50_ms": round(pct(to_sink, 50), 1),
            "sink_p99_ms": round(pct(to_sink, 99), 1),
            "delivered_p50_ms": round(pct(to_marked, 50), 1),
            "delivered_p99_ms": round(pct(to_marked, 99), 1),
        }
    if not args.no_ceiling:
        results["pgbench_claim_complete_per_s"] = round(
            pgbench_ceiling(url, server, tenant, args.seconds, clients=4)
        )
        results["drain_ratio_to_ceiling"] = round(
            results["drain_per_s"] / results["pgbench_claim_complete_per_s"], 3
        )
    drop_database(server_url, url)
    if server is not None:
        server.cleanup()
    shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        run_sink(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--rates", type=lambda v: [int(x) for x in v.split(",")], default=[500, 1000, 2000]
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=256,
        help="the endpoint's max_in_flight and each worker's concurrency (the drain's window)",
    )
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the pgbench ceiling (while iterating)"
    )
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps({"goals": GOALS, "results": results}, indent=2))


if __name__ == "__main__":
    main()
