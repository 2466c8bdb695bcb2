"""Internal subscribers: once in effect, retried with backoff, dead-lettered with the traceback."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from events.support import eventually, running_worker, scalar
from events.test_outbox import WidgetCreated
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import HandlerContext, publish, subscriber
from tradeflow.kit.keyring import Keyring

CALLS: dict[str, list[uuid.UUID]] = {"ok": [], "flaky": [], "broken": []}
FLAKY_FAILURES: dict[uuid.UUID, int] = {}


@subscriber("widget.created", name="tests.widget_counter")
async def count_widgets(ctx: HandlerContext) -> None:
    CALLS["ok"].append(ctx.event.id)
    # The handler's own write shares the consumption record's transaction.
    await ctx.session.execute(
        text("SELECT set_config('app.note', :v, true)"), {"v": str(ctx.event.id)}
    )


@subscriber("widget.created", name="tests.flaky")
async def flaky(ctx: HandlerContext) -> None:
    CALLS["flaky"].append(ctx.event.id)
    seen = FLAKY_FAILURES.get(ctx.event.id, 0)
    if seen < 2:
        FLAKY_FAILURES[ctx.event.id] = seen + 1
        raise RuntimeError("flaky handler failure")


@subscriber("widget.created", name="tests.broken")
async def broken(ctx: HandlerContext) -> None:
    CALLS["broken"].append(ctx.event.id)
    raise ValueError("this handler always fails")


async def _publish_widget(db: Database, tenant: uuid.UUID) -> uuid.UUID:
    wid = uuid.uuid4()
    async with db.tenant_session(tenant) as s:
        event = await publish(
            s, WidgetCreated(widget_id=wid, name="w"), tenant_id=tenant, aggregate_id=wid
        )
        await s.commit()
    return event.id


async def test_handlers_take_effect_once_retry_and_dead_letter(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    async with running_worker(fast_settings, committed, keyring):
        event_id = await _publish_widget(committed, tenant)

        async def settled() -> bool:
            done = await scalar(
                committed,
                "SELECT count(*) FILTER (WHERE d.status <> 'pending') FROM deliveries d "
                "JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.event_id = :e AND s.name LIKE 'tests.%'",
                e=event_id,
            )
            return bool(done == 3)

        await eventually(settled)
    assert CALLS["ok"].count(event_id) == 1
    assert CALLS["flaky"].count(event_id) == 3
    # Budget: the schedule's three retries plus the first attempt.
    assert CALLS["broken"].count(event_id) == 4
    async with committed.system_session() as s:
        rows = {
            r.name: r
            for r in (
                await s.execute(
                    text(
                        "SELECT s.name, d.status, d.attempts, d.last_error FROM deliveries d "
                        "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.event_id = :e"
                    ),
                    {"e": event_id},
                )
            ).all()
        }
        consumed = (
            (
                await s.execute(
                    text("SELECT handler FROM event_consumptions WHERE event_id = :e ORDER BY 1"),
                    {"e": event_id},
                )
            )
            .scalars()
            .all()
        )
        exhausted = (
            (
                await s.execute(
                    text(
                        "SELECT payload FROM events WHERE type = 'delivery.exhausted' "
                        "AND payload->>'event_id' = :e"
                    ),
                    {"e": str(event_id)},
                )
            )
            .scalars()
            .all()
        )
    assert rows["tests.widget_counter"].status == "delivered"
    assert rows["tests.flaky"].status == "delivered"
    assert rows["tests.flaky"].attempts == 3
    assert rows["tests.broken"].status == "dead"
    assert "ValueError: this handler always fails" in rows["tests.broken"].last_error
    assert "Traceback" in rows["tests.broken"].last_error
    assert consumed == ["tests.flaky", "tests.widget_counter"]
    assert len(exhausted) == 1
    assert exhausted[0]["subscriber_kind"] == "handler"


async def test_rerun_of_consumed_event_is_a_noop(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    async with running_worker(fast_settings, committed, keyring):
        event_id = await _publish_widget(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM event_consumptions WHERE event_id = :e "
                "AND handler = 'tests.widget_counter'",
                e=event_id,
            )
        )
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 0 FROM deliveries d JOIN subscribers s "
                "ON s.id = d.subscriber_id WHERE d.event_id = :e "
                "AND s.name = 'tests.widget_counter' AND d.status = 'pending'",
                e=event_id,
            )
        )
        before = CALLS["ok"].count(event_id)
        # Simulate a worker that died after the handler committed but before the
        # completion was written: the delivery is pending again.
        async with committed.system_session() as s:
            await s.execute(
                text(
                    "UPDATE deliveries d SET status = 'pending', next_attempt_at = now() "
                    "FROM subscribers s WHERE s.id = d.subscriber_id AND d.event_id = :e "
                    "AND s.name = 'tests.widget_counter'"
                ),
                {"e": event_id},
            )
            await s.commit()
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM delivery_attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.event_id = :e AND s.name = 'tests.widget_counter' "
                "AND d.status = 'delivered' "
                "HAVING count(*) >= 2",
                e=event_id,
            )
        )
    assert CALLS["ok"].count(event_id) == before == 1
