"""Periodic jobs declared in code with cron expressions, run once per tick across all workers.

    @scheduled("ledger.reconcile", cron="0 3 * * *")
    async def reconcile(ctx: JobContext) -> None: ...

Each job has a `scheduled_jobs` row. A worker claims a due job with
`FOR UPDATE SKIP LOCKED` and, in the same short transaction, moves
`next_run_at` to the following tick and takes a lease (`running_until`), so
however many workers are up exactly one runs each tick. Missed ticks (all
workers down) collapse into one run. A worker killed mid-run leaves the lease
to expire; the row then shows `last_status = 'abandoned'` and the job runs
again at its next tick — a tick runs at most once. Cron expressions have five
fields, or six with seconds last (croniter).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from croniter import croniter
from sqlalchemy import text

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import metrics
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    db: Database
    name: str
    scheduled_for: datetime


JobFn = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    cron: str
    fn: JobFn
    timeout: float


JOBS: dict[str, Job] = {}


def next_tick(cron: str, after: datetime) -> datetime:
    value: datetime = croniter(cron, after).get_next(datetime)
    return value


def scheduled(name: str, *, cron: str, timeout: float = 300.0) -> Callable[[JobFn], JobFn]:
    """Run the decorated coroutine on every tick of `cron`, once across all workers."""
    if not croniter.is_valid(cron):
        raise ValueError(f"invalid cron expression {cron!r} for job {name!r}")

    def register(fn: JobFn) -> JobFn:
        JOBS[name] = Job(name, cron, fn, timeout)
        return fn

    return register


async def sync_jobs(db: Database) -> None:
    """Create rows for new jobs; a changed cron expression reschedules the job."""
    now = utcnow()
    async with db.system_session() as session:
        for job in JOBS.values():
            await session.execute(
                text(
                    "INSERT INTO scheduled_jobs (name, cron, next_run_at) VALUES (:n, :c, :next) "
                    "ON CONFLICT (name) DO UPDATE SET cron = EXCLUDED.cron, "
                    "next_run_at = EXCLUDED.next_run_at "
                    "WHERE scheduled_jobs.cron IS DISTINCT FROM EXCLUDED.cron"
                ),
                {"n": job.name, "c": job.cron, "next": next_tick(job.cron, now)},
            )
        await session.commit()


_CLAIM = text(
    """
    SELECT name, cron, next_run_at, running_until IS NOT NULL AS abandoned
    FROM scheduled_jobs
    WHERE enabled AND next_run_at <= now() AND name = ANY(:known)
      AND (running_until IS NULL OR running_until < now())
    ORDER BY next_run_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
    """
)


async def claim_job(db: Database, owner: str) -> tuple[Job, datetime] | None:
    async with db.system_session() as session:
        row = (await session.execute(_CLAIM, {"known": list(JOBS)})).first()
        if row is None:
            return None
        job = JOBS[row.name]
        now = utcnow()
        await session.execute(
            text(
                "UPDATE scheduled_jobs SET next_run_at = :next, "
                "running_until = now() + make_interval(secs => :lease), running_owner = :owner, "
                "last_started_at = now(), run_count = run_count + 1, "
                "failure_count = failure_count + CASE WHEN :abandoned THEN 1 ELSE 0 END, "
                "last_status = CASE WHEN :abandoned THEN 'abandoned' ELSE 'running' END "
                "WHERE name = :name"
            ),
            {
                "next": next_tick(job.cron, now),
                "lease": job.timeout + 30,
                "owner": owner,
                "name": job.name,
                "abandoned": row.abandoned,
            },
        )
        await session.commit()
        return job, row.next_run_at


async def run_job(settings: Settings, db: Database, owner: str, job: Job, tick: datetime) -> str:
    """Run one claimed tick and record its outcome; returns the status."""
    t0 = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(job.fn(JobContext(settings, db, job.name, tick)), job.timeout)
        status = "ok"
    except Exception as exc:
        status = "failed"
        error = "".join(traceback.format_exception(exc))[-4000:]
        log.warning("scheduled_job_failed", job=job.name, error=repr(exc))
    metrics.JOB_RUNS.labels(job.name, status).inc()
    async with db.system_session() as session:
        await session.execute(
            text(
                "UPDATE scheduled_jobs SET running_until = NULL, running_owner = NULL, "
                "last_finished_at = now(), last_status = :status, last_error = :error, "
                "last_duration_ms = :ms, "
                "failure_count = failure_count + :failed "
                "WHERE name = :name AND running_owner = :owner"
            ),
            {
                "status": status,
                "failed": int(status == "failed"),
                "error": error,
                "ms": (time.perf_counter() - t0) * 1000,
                "name": job.name,
                "owner": owner,
            },
        )
        await session.commit()
    return status


class Scheduler:
    def __init__(self, settings: Settings, db: Database, owner: str) -> None:
        self.settings = settings
        self.db = db
        self.owner = owner

    async def run(self, stop: asyncio.Event) -> None:
        synced = False
        while not stop.is_set():
            try:
                if not synced:
                    await sync_jobs(self.db)
                    synced = True
                claimed = await claim_job(self.db, self.owner) if JOBS else None
                if claimed is not None:
                    await run_job(self.settings, self.db, self.owner, *claimed)
                    continue
            except Exception as exc:
                log.warning("scheduler_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._idle_seconds())

    def _idle_seconds(self) -> float:
        # Sub-second precision is plenty for cron; poll at most once a second.
        return max(0.2, min(1.0, self.settings.delivery_poll_seconds))
