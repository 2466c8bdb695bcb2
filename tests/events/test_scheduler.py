"""The scheduler: each tick runs once however many workers are up; status is visible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from croniter import croniter
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from events.support import FAST, eventually, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import JobContext, scheduled
from tradeflow.events.scheduler import next_tick
from tradeflow.kit.keyring import Keyring

TICKS: list[datetime] = []


@scheduled("tests.every_second", cron="* * * * * *")
async def every_second(ctx: JobContext) -> None:
    TICKS.append(ctx.scheduled_for)


@scheduled("tests.always_fails", cron="* * * * * *")
async def always_fails(ctx: JobContext) -> None:
    raise RuntimeError("the job broke")


def test_cron_with_seconds() -> None:
    # Six fields: seconds come last.
    assert croniter.is_valid("* * * * * */5")
    after = datetime.fromisoformat("2026-01-01T00:00:01+00:00")
    assert next_tick("* * * * * */5", after).isoformat() == "2026-01-01T00:00:05+00:00"
    assert next_tick("0 3 * * *", after).isoformat() == "2026-01-01T03:00:00+00:00"


async def test_each_tick_runs_once_across_workers(
    committed: Database, settings: Settings, keyring: Keyring
) -> None:
    cfg = settings.model_copy(update={**FAST, "scheduler_enabled": True})
    TICKS.clear()
    async with running_worker(cfg, committed, keyring), running_worker(cfg, committed, keyring):
        await eventually(lambda: len(TICKS) >= 3, timeout=15)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT last_status = 'failed' FROM scheduled_jobs "
                "WHERE name = 'tests.always_fails'",
            ),
            timeout=15,
        )
    assert len(TICKS) == len(set(TICKS)), TICKS
    async with committed.system_session() as s:
        row = (
            await s.execute(text("SELECT * FROM scheduled_jobs WHERE name = 'tests.every_second'"))
        ).one()
    assert row.run_count >= 3
    assert row.last_status == "ok"
    assert row.next_run_at > row.last_started_at


async def test_job_status_through_the_api(
    committed: Database, settings: Settings, keyring: Keyring
) -> None:
    from tradeflow.app import create_app
    from tradeflow.identity import service as identity
    from tradeflow.identity.principal import ALL_SCOPES
    from tradeflow.identity.repository import IdentityRepository

    cfg = settings.model_copy(update={**FAST, "scheduler_enabled": True})
    async with running_worker(cfg, committed, keyring):
        await eventually(
            lambda: scalar(
                committed,
                "SELECT failure_count > 0 FROM scheduled_jobs WHERE name = 'tests.always_fails'",
            ),
            timeout=15,
        )
    async with committed.system_session() as s:
        tenant = await identity.create_tenant(s, name="Jobs", slug="jobs-tenant")
        key = await identity.create_api_key(
            IdentityRepository(s, tenant.id), name="k", scopes=ALL_SCOPES, actor=None
        )
        await s.commit()
    app = create_app(settings, committed, keyring=keyring)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/v1/scheduled-jobs", headers={"Authorization": f"Bearer {key.token}"})
    jobs: dict[str, Any] = {j["name"]: j for j in r.json()}
    assert "events.retention" in jobs
    failing = jobs["tests.always_fails"]
    assert failing["last_status"] == "failed"
    assert "RuntimeError: the job broke" in failing["last_error"]
    assert failing["next_run_at"] is not None
