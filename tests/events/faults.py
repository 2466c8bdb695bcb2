"""Harness for the fault-injection tests: worker subprocesses and the four checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

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
    """`tradeflow worker` as its own process against the test database."""
    env = {
        **os.environ,
        **WORKER_ENV,
        "TRADEFLOW_DATABASE_URL": database_url,
        "TRADEFLOW_MASTER_KEY": settings.master_key or "",
        "TRADEFLOW_HOME": str(home),
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tradeflow", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


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
