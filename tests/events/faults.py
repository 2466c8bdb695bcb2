"""Harness for the fault-injection tests: worker subprocesses and the four checks."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from events.sink import Sink
from tradeflow.config import Settings
from tradeflow.db import Database

WORKER_ENV = {
    "TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE": "true",
    "TRADEFLOW_WEBHOOKS_TIMEOUT_SECONDS": "1",
    "TRADEFLOW_DELIVERY_LEASE_SECONDS": "6",
    "TRADEFLOW_DELIVERY_POLL_SECONDS": "0.2",
    "TRADEFLOW_DELIVERY_SHUTDOWN_SECONDS": "3",
    "TRADEFLOW_WEBHOOKS_RETRY_SCHEDULE": json.dumps([0.2] * 12),
    "TRADEFLOW_DELIVERY_RETRY_JITTER": "0",
    "TRADEFLOW_BREAKER_FAILURE_THRESHOLD": "1000",
    "TRADEFLOW_SCHEDULER_ENABLED": "false",
    "TRADEFLOW_LOG_LEVEL": "warning",
}


def spawn_worker(
    settings: Settings, database_url: str, home: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """`tradeflow worker` as its own process against the test database.

    Its log goes to a file in `home` (`worker_log`), never to a pipe: a pipe nobody reads
    fills after 64 KiB, and the worker then blocks on its next log line, stalling delivery.
    """
    env = {
        **os.environ,
        **WORKER_ENV,
        "TRADEFLOW_DATABASE_URL": database_url,
        "TRADEFLOW_MASTER_KEY": settings.master_key or "",
        "TRADEFLOW_HOME": str(home),
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = home / f"worker-{next(_spawned)}.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeflow", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    _logs[proc.pid] = log
    return proc


_spawned = itertools.count(1)
_logs: dict[int, Path] = {}


def worker_log(proc: subprocess.Popen[bytes], tail: int = 4000) -> str:
    """The end of a spawned worker's log (stderr), for failure messages."""
    log = _logs.get(proc.pid)
    if log is None or not log.exists():
        return "(no log)"
    text_ = log.read_text(errors="replace")
    return f"worker {proc.pid} (exit {proc.poll()}) log {log}:\n{text_[-tail:] or '(empty)'}"


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)


@dataclass
class Verdict:
    events: int
    delivered: int
    dead: int
    pending: int
    lost: list[str]
    duplicate_effects: int
    overlaps: list[str]
    out_of_order: dict[str, list[int]]
    resent: int  # deliveries the sink received more than once (deduplicated, no effect)

    def assert_clean(self, *, dead_allowed: bool = False) -> None:
        assert self.pending == 0, self
        assert self.lost == [], self
        assert self.duplicate_effects == 0, self
        assert self.overlaps == [], self
        assert self.out_of_order == {}, self
        if not dead_allowed:
            assert self.dead == 0, self


async def settled(db: Database, endpoint: uuid.UUID, expected: int) -> bool:
    async with db.system_session() as s:
        n = (
            await s.execute(
                text(
                    "SELECT count(*) FROM deliveries WHERE subscriber_id = :e "
                    "AND status IN ('delivered', 'dead')"
                ),
                {"e": endpoint},
            )
        ).scalar()
    return n == expected


async def verdict(
    db: Database, endpoint: uuid.UUID, event_ids: list[uuid.UUID], sink: Sink
) -> Verdict:
    async with db.system_session() as s:
        rows = (
            await s.execute(
                text("SELECT event_id, status FROM deliveries WHERE subscriber_id = :e"),
                {"e": endpoint},
            )
        ).all()
    status = {str(r.event_id): r.status for r in rows}
    delivered = {k for k, v in status.items() if v == "delivered"}
    # Lost: committed but neither delivered (with its effect at the sink) nor dead-lettered.
    lost = [
        str(e)
        for e in event_ids
        if status.get(str(e)) not in ("delivered", "dead")
        or (status.get(str(e)) == "delivered" and str(e) not in sink.effects)
    ]
    received = [r.webhook_id for r in sink.requests if r.status == 200]
    effects_for_ours = [k for k in sink.effects if k in status]
    return Verdict(
        events=len(event_ids),
        delivered=len(delivered),
        dead=sum(1 for v in status.values() if v == "dead"),
        pending=sum(1 for v in status.values() if v == "pending"),
        lost=lost,
        duplicate_effects=len(effects_for_ours) - len(set(effects_for_ours)),
        overlaps=list(sink.overlaps),
        out_of_order=sink.out_of_order(),
        resent=len(received) - len(set(received)),
    )


async def unsettled(db: Database, endpoint: uuid.UUID, limit: int = 40) -> str:
    """What keeps an endpoint's deliveries from being final: each one neither delivered nor
    dead (order, status, lease, attempts), queued promotions and undispatched events."""
    async with db.system_session() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT id, aggregate, sequence, status, ready, attempts, claims, "
                    "lease_owner, round(extract(epoch FROM leased_until - now())::numeric, 2) "
                    "AS lease_left, round(extract(epoch FROM next_attempt_at - now())::numeric, "
                    "2) AS due_in, last_error FROM deliveries "
                    "WHERE subscriber_id = :e AND status NOT IN ('delivered', 'dead') "
                    "ORDER BY aggregate, sequence"
                ),
                {"e": endpoint},
            )
        ).all()
        other = (
            await s.execute(
                text(
                    "SELECT (SELECT count(*) FROM delivery_promotions) AS promotions, "
                    "(SELECT count(*) FROM events WHERE dispatched_at IS NULL) AS undispatched, "
                    "(SELECT count(*) FROM deliveries WHERE subscriber_id = :e "
                    " AND status IN ('delivered', 'dead')) AS final"
                ),
                {"e": endpoint},
            )
        ).one()
    lines = [
        f"{len(rows)} not final ({other.final} final), {other.promotions} promotions queued, "
        f"{other.undispatched} events undispatched"
    ]
    for r in rows[:limit]:
        error = (r.last_error or "").splitlines()[:1]
        lines.append(
            f"  {r.aggregate} #{r.sequence} {r.status} ready={r.ready} attempts={r.attempts} "
            f"claims={r.claims} owner={r.lease_owner} lease_left={r.lease_left} "
            f"due_in={r.due_in} error={error}"
        )
    return "\n".join(lines)


async def await_settled(
    db: Database,
    endpoint: uuid.UUID,
    expected: int,
    *,
    stall: float = 30.0,
    limit: float = 300.0,
    procs: Sequence[subprocess.Popen[bytes]] = (),
) -> None:
    """Wait until all `expected` deliveries of `endpoint` are delivered or dead.

    Fails when nothing moved (no delivery finished, no attempt or claim recorded) for
    `stall` seconds, or after `limit` seconds in all, with what is not final and the
    workers' logs. A stall, not a total, is the budget: on a loaded machine the work takes
    longer but keeps moving, while a delivery that can end neither delivered nor dead stops
    everything moving well within the stall window (which outlasts a lease and a worker's
    start-up).
    """
    start = last_move = time.monotonic()
    seen: Any = None
    while True:
        async with db.system_session() as s:
            now = (
                await s.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE status IN ('delivered', 'dead')) AS final, "
                        "coalesce(sum(attempts), 0) AS attempts, "
                        "coalesce(sum(claims), 0) AS claims "
                        "FROM deliveries WHERE subscriber_id = :e"
                    ),
                    {"e": endpoint},
                )
            ).one()
        if now.final == expected:
            return
        if tuple(now) != seen:
            seen, last_move = tuple(now), time.monotonic()
        waited, still = time.monotonic() - start, time.monotonic() - last_move
        if still > stall or waited > limit:
            why = f"no progress for {still:.1f}s" if still > stall else f"over {limit}s"
            logs = "\n".join(worker_log(p) for p in procs)
            raise AssertionError(
                f"deliveries not settled after {waited:.1f}s ({why}):\n"
                f"{await unsettled(db, endpoint)}\n{logs}"
            )
        await asyncio.sleep(0.1)
