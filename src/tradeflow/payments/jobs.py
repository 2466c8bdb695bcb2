"""Payments' periodic jobs: resolve processor calls whose outcome is unknown; void expired
authorisations; prune old webhooks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tradeflow.events import JobContext, scheduled
from tradeflow.kit.keyring import load_keyring
from tradeflow.payments.expiry import expire_authorizations
from tradeflow.payments.resolver import resolve_due


@scheduled("payments.resolve", cron="* * * * * */5", timeout=120)
async def resolve_unknown_outcomes(ctx: JobContext) -> None:
    """Every 5 s: ask processors about timed-out calls (never resend them)."""
    await resolve_due(ctx.db, load_keyring(ctx.settings, create=False))


@scheduled("payments.expire_authorizations", cron="*/10 * * * *", timeout=600)
async def void_expired_authorizations(ctx: JobContext) -> None:
    """Every 10 min: void manual-capture authorisations left uncaptured past the window."""
    await expire_authorizations(
        ctx.db,
        load_keyring(ctx.settings, create=False),
        older_than=timedelta(seconds=ctx.settings.payments_authorization_expiry_seconds),
    )


@scheduled("payments.prune_webhooks", cron="41 3 * * *")
async def prune_processor_webhooks(ctx: JobContext) -> None:
    """Daily: forget applied processor webhooks older than the events retention period.

    Their facts live on in payments, refunds and events; the stored payloads only
    matter while a repeat of the same event id could still arrive."""
    async with ctx.db.system_session() as session:
        await session.execute(
            text(
                "DELETE FROM processor_webhooks WHERE processed_at IS NOT NULL "
                "AND received_at < now() - make_interval(days => :days)"
            ),
            {"days": ctx.settings.events_retention_days},
        )
        await session.commit()
