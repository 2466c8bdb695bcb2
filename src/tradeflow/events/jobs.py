"""The events context's own periodic jobs."""

from __future__ import annotations

from sqlalchemy import text

from tradeflow.events.scheduler import JobContext, scheduled


@scheduled("events.retention", cron="17 * * * *")
async def prune_old_events(ctx: JobContext) -> None:
    """Delete events (with their deliveries and attempts) older than the retention period
    once nothing about them is pending; dead letters go with them."""
    async with ctx.db.system_session() as session:
        await session.execute(
            text(
                """
                DELETE FROM events e
                WHERE e.dispatched_at IS NOT NULL
                  AND e.occurred_at < now() - make_interval(days => :days)
                  AND NOT EXISTS (SELECT 1 FROM deliveries d
                                  WHERE d.event_id = e.id AND d.status = 'pending')
                """
            ),
            {"days": ctx.settings.events_retention_days},
        )
        await session.execute(
            text(
                "DELETE FROM event_consumptions "
                "WHERE consumed_at < now() - make_interval(days => :days)"
            ),
            {"days": ctx.settings.events_retention_days},
        )
        await session.commit()
