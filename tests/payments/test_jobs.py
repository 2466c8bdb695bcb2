"""Payments' scheduled jobs are registered with the scheduler and do their work."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from orders.factories import World
from payments.support import scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.registry import load_plugins
from tradeflow.events.scheduler import JOBS, JobContext
from tradeflow.kit.time import utcnow
from tradeflow.payments.jobs import prune_processor_webhooks

_insert = text(
    "INSERT INTO processor_webhooks (id, tenant_id, processor, external_id, event_type, payload, "
    "received_at, processed_at) VALUES (:id, :t, 'sandbox', :e, 'charge.captured', '{}', "
    "now() - make_interval(days => :days), CASE WHEN :processed THEN now() END)"
)


def test_jobs_are_registered() -> None:
    load_plugins()
    assert {"payments.resolve", "payments.prune_webhooks"} <= set(JOBS)
    assert JOBS["payments.resolve"].cron == "* * * * * */5"


async def test_old_applied_webhooks_are_pruned(
    world: World, rolled_back: Database, settings: Settings
) -> None:
    async with rolled_back.system_session() as s:
        for age_days, processed in ((90, True), (90, False), (1, True)):
            await s.execute(
                _insert,
                {
                    "id": uuid.uuid4(),
                    "t": world.tenant_id,
                    "e": f"evt_{uuid.uuid4().hex}",
                    "days": age_days,
                    "processed": processed,
                },
            )
        await s.commit()
    await prune_processor_webhooks(JobContext(settings, rolled_back, "payments.prune", utcnow()))
    left = await scalar(
        rolled_back,
        "SELECT count(*) FROM processor_webhooks WHERE tenant_id = :t",
        t=world.tenant_id,
    )
    assert left == 2  # the unapplied one and the recent one
