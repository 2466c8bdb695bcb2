"""Ledger benchmark (issue 5 §1), run on demand — not part of CI.

    .venv/bin/python bench/ledger.py [--seconds 20] [--tasks 16] [--lines 300000]

1. Starts an embedded PostgreSQL (or uses TRADEFLOW_DATABASE_URL's server), creates a fresh
   database, migrates it, and seeds a tenant and its chart of accounts through the services.
2. Sequential: N invoice + N payment postings one at a time — CPU ms per posting of this
   process (handler, SQLAlchemy, driver) and of PostgreSQL. The least noisy figure on a
   shared machine.
3. Concurrent: T tasks for S seconds, each posting an `invoice.issued` and then the
   `payment.captured` that pays it, each in its own transaction exactly as the worker runs a
   handler (tenant session, consumption record, `ledger.handlers.post_to_ledger`, commit):
   postings/s, p50/p99 per kind, CPU per posting.
4. pgbench on the same database, T clients, S seconds, running the equivalent INSERTs
   (consumption record, system-account look-up, entry, its lines — under the sealing and
   deferred balance triggers — and the `ledger.entry_posted` outbox event with its stream
   counter), invoices and payments alternating: the ceiling.
5. The journal filled to L lines in bulk (plain INSERT … SELECT under the same triggers),
   then the trial balance through `ledger.service.trial_balance`: latency p50/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders import conninfo, cpu_seconds, private_database, run_pgbench

CONSUME = (
    "INSERT INTO event_consumptions (handler, event_id, tenant_id) "
    "VALUES (:handler, :event_id, :tenant_id) ON CONFLICT DO NOTHING RETURNING 1"
)


# -- setup ------------------------------------------------------------------------------------
async def seed(db: Any) -> dict[str, Any]:
    """A tenant and its default chart of accounts, through the services."""
    from tradeflow.identity import service as identity
    from tradeflow.ledger import service as ledger

    async with db.system_session() as s:
        tenant = await identity.create_tenant(s, name="Bench seller", slug="bench")
        await s.commit()
    async with db.tenant_session(tenant.id) as s:
        accounts = await ledger.ensure_chart(s, tenant_id=tenant.id)
        await s.commit()
    return {"tenant_id": tenant.id, "accounts": accounts}


def delivered(
    tenant_id: uuid.UUID,
    event_type: str,
    aggregate_type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
) -> Any:
    """An event as the worker hands it to a handler (the first of its aggregate's stream)."""
    from tradeflow.events.registry import DeliveredEvent

    return DeliveredEvent(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        type=event_type,
        version=1,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        sequence=1,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )


def invoice_event(tenant_id: uuid.UUID, customer_id: uuid.UUID, n: int) -> Any:
    invoice_id = uuid.uuid4()
    net = 1000 + n % 9000
    return delivered(
        tenant_id,
        "invoice.issued",
        "invoice",
        invoice_id,
        {
            "invoice_id": str(invoice_id),
            "number": f"INV-B-{n:08d}",
            "order_id": str(uuid.uuid4()),
            "customer_id": str(customer_id),
            "currency": "EUR",
            "tax_minor": net // 5,
            "total_minor": net + net // 5,
        },
    )


def payment_event(invoice: Any) -> Any:
    facts = invoice.payload
    payment_id = uuid.uuid4()
    return delivered(
        invoice.tenant_id,
        "payment.captured",
        "payment",
        payment_id,
        {
            "payment_id": str(payment_id),
            "invoice_id": facts["invoice_id"],
            "order_id": facts["order_id"],
            "customer_id": facts["customer_id"],
            "amount_minor": facts["total_minor"],
            "currency": "EUR",
            "fee_minor": facts["total_minor"] * 29 // 1000 + 25,
            "processor": "sandbox",
        },
    )


async def handle(db: Any, event: Any) -> None:
    """One posting as the worker's handler transport runs it: one transaction with the
    consumption record, the ledger's handler, commit."""
    from sqlalchemy import text

    from tradeflow.events.registry import HandlerContext
    from tradeflow.ledger.handlers import HANDLER_NAME, post_to_ledger

    async with db.tenant_session(event.tenant_id) as session:
        consumed = await session.execute(
            text(CONSUME),
            {"handler": HANDLER_NAME, "event_id": event.id, "tenant_id": event.tenant_id},
        )
        assert consumed.first() is not None
        await post_to_ledger(HandlerContext(session=session, event=event, attempt=1))
        await session.commit()


# -- postings ---------------------------------------------------------------------------------
@dataclass
class Run:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"invoice.issued": [], "payment.captured": []}
    )
    errors: int = 0
    elapsed: float = 0.0

    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @staticmethod
    def pct(values: list[float], p: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def sequential(
    db: Any, tenant_id: uuid.UUID, n: int, pg_marker: str | None
) -> dict[str, Any]:
    """CPU per posting, one at a time: this process's and PostgreSQL's."""
    customers = [uuid.uuid4() for _ in range(50)]
    for i in range(20):  # warm-up: caches, prepared statements, the pool
        inv = invoice_event(tenant_id, customers[i % 50], i)
        await handle(db, inv)
        await handle(db, payment_event(inv))
    from sqlalchemy import event as sa_event

    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    # Statements per posting (an executemany counts once: the driver pipelines its rows).
    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    out: dict[str, Any] = {}
    for kind in ("invoice.issued", "payment.captured"):
        invoices = [invoice_event(tenant_id, customers[i % 50], 10_000 + i) for i in range(n)]
        if kind == "payment.captured":
            for inv in invoices:
                await handle(db, inv)
        events = invoices if kind == "invoice.issued" else [payment_event(i) for i in invoices]
        pg0 = cpu_seconds([], marker=pg_marker) if pg_marker else 0.0
        own0, wall0, statements0 = time.process_time(), time.monotonic(), statements[0]
        for event in events:
            await handle(db, event)
        per_posting = (statements[0] - statements0) / n
        wall = time.monotonic() - wall0
        own = time.process_time() - own0
        pg = (cpu_seconds([], marker=pg_marker) - pg0) if pg_marker else 0.0
        out[kind] = {
            "cpu_ms_per_posting": {
                "python (handler, ORM, driver)": round(own / n * 1000, 3),
                "postgres": round(pg / n * 1000, 3),
            },
            "wall_ms_per_posting": round(wall / n * 1000, 3),
            "statements_per_posting": round(per_posting, 2),
        }
    sa_event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    return out


async def concurrent(
    db: Any, tenant_id: uuid.UUID, tasks: int, seconds: float, pg_marker: str | None
) -> dict[str, Any]:
    run = Run()
    warmup = 2.0
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    counted = [0]
    cpu: dict[str, float] = {}

    async def task(t: int) -> None:
        n = 0
        customer = uuid.uuid4()
        while time.monotonic() < stop_at:
            inv = invoice_event(tenant_id, customer, t * 10_000_000 + n)
            for event in (inv, payment_event(inv)):
                t0 = time.monotonic()
                try:
                    await handle(db, event)
                except Exception:
                    run.errors += 1
                    continue
                t1 = time.monotonic()
                if t0 >= measure_from and t1 <= stop_at:
                    run.latencies[event.type].append(t1 - t0)
                counted[0] += 1
            n += 1

    async def meter() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        cpu["own0"], cpu["pg0"], cpu["n0"] = (
            time.process_time(),
            cpu_seconds([], marker=pg_marker) if pg_marker else 0.0,
            counted[0],
        )
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        cpu["own1"], cpu["pg1"], cpu["n1"] = (
            time.process_time(),
            cpu_seconds([], marker=pg_marker) if pg_marker else 0.0,
            counted[0],
        )

    await asyncio.gather(meter(), *(task(t) for t in range(tasks)))
    run.elapsed = seconds
    done = max(1.0, cpu["n1"] - cpu["n0"])
    out: dict[str, Any] = {
        "postings_per_s": round(run.count() / run.elapsed, 1),
        "errors": run.errors,
        "cpu_ms_per_posting": {
            "python (handler, ORM, driver)": round((cpu["own1"] - cpu["own0"]) / done * 1000, 3),
            "postgres": round((cpu["pg1"] - cpu["pg0"]) / done * 1000, 3),
        },
    }
    for kind, values in run.latencies.items():
        out[kind] = {
            "per_s": round(len(values) / run.elapsed, 1),
            "p50_ms": round(Run.pct(values, 50), 2),
            "p99_ms": round(Run.pct(values, 99), 2),
        }
    return out


# -- pgbench: the database's ceiling for the same INSERTs --------------------------------------
_PGBENCH_HEAD = """\
\\set n random(1, 1000000000)
BEGIN;
INSERT INTO event_consumptions (handler, event_id, tenant_id)
  VALUES ('ledger.post', gen_random_uuid(), :tenant::uuid) ON CONFLICT DO NOTHING RETURNING 1;
SELECT system_key, id FROM ledger_accounts
  WHERE tenant_id = :tenant::uuid AND system_key IS NOT NULL;
INSERT INTO ledger_entries (id, tenant_id, kind, currency, description, source_event_id,
    source_event_type, refs, occurred_at, posted_at, posted_by)
  VALUES (gen_random_uuid(), :tenant::uuid, 'event', 'EUR', 'Bench ' || :n, gen_random_uuid(),
    '{source}', '{{"invoice_id": "x", "order_id": "y", "customer_id": "z"}}'::jsonb, now(), now(),
    'ledger') ON CONFLICT DO NOTHING RETURNING id \\gset e_
"""
_PGBENCH_LINES = {
    "invoice.issued": (("receivables", 1440, 0), ("revenue", 0, 1200), ("tax", 0, 240)),
    "payment.captured": (("clearing", 1373, 0), ("fees", 67, 0), ("receivables", 0, 1440)),
}
_PGBENCH_TAIL = """\
WITH stream AS (
  INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
  VALUES (:tenant::uuid, 'ledger_entry', :e_id::uuid, 1)
  ON CONFLICT (tenant_id, aggregate_type, aggregate_id)
  DO UPDATE SET last_sequence = es.last_sequence + 1
  RETURNING last_sequence)
INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence,
    occurred_at, payload)
  SELECT gen_random_uuid(), :tenant::uuid, 'ledger.entry_posted', 1, 'ledger_entry', :e_id::uuid,
         stream.last_sequence, now(), '{"entry_id": "x", "lines": [1, 2, 3]}'::jsonb FROM stream;
COMMIT;
"""


def pgbench_script(kind: str) -> str:
    values = ",\n  ".join(
        f"(gen_random_uuid(), :tenant::uuid, :e_id::uuid, {no}, :{acct}::uuid, 'EUR', {dr}, {cr},"
        " :customer::uuid, NULL, now())"
        for no, (acct, dr, cr) in enumerate(_PGBENCH_LINES[kind], start=1)
    )
    lines = (
        "INSERT INTO ledger_lines (id, tenant_id, entry_id, line_no, account_id, currency,"
        " debit_minor, credit_minor, customer_id, memo, posted_at) VALUES\n  " + values + ";\n"
    )
    return _PGBENCH_HEAD.replace("{source}", kind).replace("{{", "{").replace("}}", "}") + (
        lines + _PGBENCH_TAIL
    )


def pgbench(
    url: str, tenant_id: uuid.UUID, accounts: dict[str, uuid.UUID], clients: int, seconds: int
) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="tradeflow-bench-pgbench-"))
    try:
        scripts = []
        for kind in _PGBENCH_LINES:
            path = folder / f"{kind}.sql"
            path.write_text(pgbench_script(kind))
            scripts += ["-f", f"{path}@1"]
        variables = {
            "tenant": str(tenant_id),
            "customer": str(uuid.uuid4()),
            "receivables": str(accounts["receivables"]),
            "revenue": str(accounts["revenue"]),
            "tax": str(accounts["tax_payable"]),
            "clearing": str(accounts["processor_clearing"]),
            "fees": str(accounts["processor_fees"]),
        }
        defines = [a for name, value in variables.items() for a in ("-D", f"{name}={value}")]
        return run_pgbench(url, clients, seconds, *scripts, *defines)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- a large journal and its trial balance ---------------------------------------------------
FILL_CHUNK = 20_000  # entries per transaction (3 lines each)


def fill_journal(
    url: str, tenant_id: uuid.UUID, accounts: dict[str, uuid.UUID], lines: int
) -> float:
    """Invoice-shaped entries (3 lines) in bulk until the journal holds `lines` lines; the
    sealing and balance triggers run as for any posting. Returns the seconds it took."""
    t0 = time.monotonic()
    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        have = conn.execute(
            "SELECT count(*) FROM ledger_lines WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
        missing = max(0, lines - int(have[0] if have else 0)) // 3
        params = {
            "t": tenant_id,
            "ar": accounts["receivables"],
            "rev": accounts["revenue"],
            "tax": accounts["tax_payable"],
        }
        while missing > 0:
            n = min(FILL_CHUNK, missing)
            with conn.transaction():
                conn.execute(  # no parameters: a utility statement takes none
                    "CREATE TEMP TABLE fill ON COMMIT DROP AS"
                    " SELECT gen_random_uuid() AS id, g AS n, gen_random_uuid() AS customer,"
                    f" 1000 + g % 9000 AS net FROM generate_series(1, {int(n)}) g"
                )
                conn.execute(
                    """
                    INSERT INTO ledger_entries (id, tenant_id, kind, currency, description,
                        source_event_id, source_event_type, refs, occurred_at, posted_at,
                        posted_by)
                    SELECT id, %(t)s, 'event', 'EUR', 'Bulk invoice ' || n, gen_random_uuid(),
                           'invoice.issued', '{}'::jsonb, now(), now(), 'bench'
                    FROM fill
                    """,
                    params,
                )
                conn.execute(
                    """
                    INSERT INTO ledger_lines (id, tenant_id, entry_id, line_no, account_id,
                        currency, debit_minor, credit_minor, customer_id, posted_at)
                    SELECT gen_random_uuid(), %(t)s, f.id, l.no, l.account, 'EUR', l.dr, l.cr,
                           f.customer, now()
                    FROM fill f CROSS JOIN LATERAL (VALUES
                        (1, %(ar)s::uuid, f.net + f.net / 5, 0),
                        (2, %(rev)s::uuid, 0, f.net),
                        (3, %(tax)s::uuid, 0, f.net / 5)) AS l(no, account, dr, cr)
                    """,
                    params,
                )
            missing -= n
        conn.execute("ANALYZE ledger_entries")
        conn.execute("ANALYZE ledger_lines")
    return time.monotonic() - t0


async def trial_balance_latency(db: Any, tenant_id: uuid.UUID, rounds: int) -> dict[str, Any]:
    from sqlalchemy import func, select, text

    from tradeflow.ledger import service as ledger

    samples: list[float] = []
    cpu: list[float] = []
    tb: Any = None
    for i in range(rounds + 1):
        async with db.tenant_session(tenant_id) as s:
            c0, t0 = time.process_time(), time.monotonic()
            tb = await ledger.trial_balance(s, tenant_id=tenant_id)
            if i:  # the first round warms the cache
                samples.append(time.monotonic() - t0)
                cpu.append(time.process_time() - c0)
    async with db.tenant_session(tenant_id) as s:
        from tradeflow.ledger.models import Line  # bench only: the size of what was summed

        n_lines = await s.scalar(select(func.count()).select_from(Line))
        # The plan of the trial balance's one query (`LedgerRepository.balances`), under RLS.
        explained = await s.scalar(
            text(
                "EXPLAIN (FORMAT JSON) SELECT account_id, currency, sum(debit_minor),"
                " sum(credit_minor) FROM ledger_lines WHERE tenant_id = :t GROUP BY 1, 2"
            ),
            {"t": tenant_id},
        )
    assert tb is not None
    assert tb.balanced, "the bulk-filled journal does not balance"
    return {
        "journal_lines": int(n_lines or 0),
        "rounds": rounds,
        "p50_ms": round(Run.pct(samples, 50), 1),
        "max_ms": round(max(samples) * 1000, 1),
        "python_cpu_ms_avg": round(sum(cpu) / len(cpu) * 1000, 2),
        "accounts": len(tb.accounts),
        "plan": plan_nodes(explained[0]["Plan"] if explained else {}),
    }


def plan_nodes(node: dict[str, Any]) -> str:
    """`HashAggregate > Seq Scan on ledger_lines`: the plan's nodes, outermost first."""
    label = node.get("Node Type", "?")
    if node.get("Strategy") and node["Strategy"] != "Plain":
        label += f" ({node['Strategy']})"
    if node.get("Relation Name"):
        label += f" on {node['Relation Name']}"
    if node.get("Index Name"):
        label += f" using {node['Index Name']}"
    children = node.get("Plans") or []
    return " > ".join([label, *(plan_nodes(c) for c in children)])


# -- main -------------------------------------------------------------------------------------
async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from tradeflow.config import load_settings
    from tradeflow.db import Database
    from tradeflow.observability.logging import configure_logging

    configure_logging("warning", "json")
    with private_database() as (home, server, url):
        db: Any = None
        try:
            settings = load_settings(
                database_url=url, home=home, db_pool_size=args.tasks, db_max_overflow=4
            )
            db = Database.from_settings(settings, url)
            seeded = await seed(db)
            tenant_id, accounts = seeded["tenant_id"], seeded["accounts"]
            pg_marker = str(home / "pgdata") if server is not None else None
            result: dict[str, Any] = {
                "sequential": await sequential(db, tenant_id, args.sequential, pg_marker)
            }
            result["concurrent"] = await concurrent(
                db, tenant_id, args.tasks, args.seconds, pg_marker
            )
            await db.dispose()
            db = None
            ceiling = pgbench(url, tenant_id, accounts, args.tasks, int(args.seconds))
            result["pgbench"] = {
                "tps": round(ceiling["tps"], 1),
                "latency_avg_ms": round(ceiling["latency_avg_ms"], 2),
                "failed": int(ceiling["failed"]),
            }
            result["ratio_to_pgbench"] = round(
                result["concurrent"]["postings_per_s"] / ceiling["tps"], 3
            )
            # What the cores could sustain if this process and PostgreSQL had them to themselves:
            # cores / CPU per posting. On a shared machine this is the figure to compare.
            spent = result["concurrent"]["cpu_ms_per_posting"]
            result["cpu_bound_postings_per_s"] = round(
                (os.cpu_count() or 1) * 1000 / max(0.001, sum(spent.values())), 1
            )
            result["fill_seconds"] = round(fill_journal(url, tenant_id, accounts, args.lines), 1)
            db = Database.from_settings(settings, url)
            # Right after the load (statistics fresh, visibility map not yet set), then once
            # vacuum has run, as autovacuum does on an insert-only table after a while.
            result["trial_balance"] = await trial_balance_latency(db, tenant_id, args.rounds)
            with psycopg.connect(**conninfo(url), autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) ledger_lines")
            result["trial_balance_vacuumed"] = await trial_balance_latency(
                db, tenant_id, args.rounds
            )
            result.update(
                tasks=args.tasks,
                seconds=args.seconds,
                cpus=os.cpu_count(),
                load_average_1m=round(os.getloadavg()[0], 2),
                python=sys.version.split()[0],
                postgres=server_version(url),
            )
            return result
        finally:
            if db is not None:
                await db.dispose()


def server_version(url: str) -> str:
    with psycopg.connect(**conninfo(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="Concurrent phase and pgbench.")
    parser.add_argument("--tasks", type=int, default=16, help="Concurrent posting tasks.")
    parser.add_argument("--sequential", type=int, default=300, help="Postings of each kind.")
    parser.add_argument("--lines", type=int, default=300_000, help="Journal size for the TB.")
    parser.add_argument("--rounds", type=int, default=20, help="Trial balance calls.")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(bench(args))
    else:  # as `tradeflow worker` runs (tradeflow.runtime.run_async)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(bench(args))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
