"""Periodic work of the integrations context (run once per tick across all workers)."""

from __future__ import annotations

from tradeflow.events.scheduler import JobContext, scheduled
from tradeflow.integrations import pull, runs
from tradeflow.kit.keyring import load_keyring

# Reconciliation compares what settled at least this long ago; newer work may be in flight.
SCHEDULED_GRACE_SECONDS = 15 * 60.0


@scheduled("integrations.run_queued_reconciliations", cron="* * * * * */5", timeout=3600)
async def run_queued_reconciliations(ctx: JobContext) -> None:
    """Perform reconciliations requested through the API (`POST /v1/reconciliations`)."""
    await runs.run_queued(ctx.db, load_keyring(ctx.settings, create=False))


@scheduled("integrations.reconcile", cron="40 3 * * *", timeout=3600)
async def nightly_reconciliation(ctx: JobContext) -> None:
    """Queue and run the nightly three-way reconciliation of every tenant with integrations."""
    for tenant_id in await runs.tenants_to_reconcile(ctx.db):
        async with ctx.db.tenant_session(tenant_id) as session:
            await runs.queue_run(
                session, tenant_id, trigger="scheduled", grace_seconds=SCHEDULED_GRACE_SECONDS
            )
            await session.commit()
    await runs.run_queued(ctx.db, load_keyring(ctx.settings, create=False), limit=10_000)


@scheduled("integrations.pull_changes", cron="* * * * * */5", timeout=600)
async def pull_changes(ctx: JobContext) -> None:
    """Pull remote changes for every connector whose own schedule (`pull_cron`, default every
    5 minutes) is due, or that was asked to through `POST /v1/connectors/{id}/pull`."""
    await pull.run_due(ctx.db, load_keyring(ctx.settings, create=False))
