"""Worker lifecycle and metrics: graceful stop releases leases; gauges and counters move."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import text

from events.sink import Sink
from events.support import eventually, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import service
from tradeflow.events.worker import refresh_gauges
from tradeflow.kit.keyring import Keyring
from webhooks.support import make_endpoint, publish_widgets


async def _deliveries_state(db: Database, endpoint: uuid.UUID) -> str:
    async with db.system_session() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT d.id, d.event_type, d.status, d.ready, d.lease_owner, "
                    "round(extract(epoch FROM d.leased_until - now()), 2) AS lease_left, "
                    "d.claims, d.attempts, "
                    "round(extract(epoch FROM d.next_attempt_at - now()), 2) AS due_in, "
                    "d.last_error FROM deliveries d WHERE d.subscriber_id = :e "
                    "ORDER BY d.sequence, d.created_at"
                ),
                {"e": endpoint},
            )
        ).all()
        others = (
            await s.execute(
                text(
                    "SELECT count(*) FILTER (WHERE dispatched_at IS NULL) AS undispatched, "
                    "(SELECT count(*) FROM delivery_promotions) AS promotions FROM events"
                )
            )
        ).one()
    lines = [
        f"  {r.id} {r.event_type} status={r.status} ready={r.ready} owner={r.lease_owner} "
        f"lease_left={r.lease_left} claims={r.claims} attempts={r.attempts} "
        f"due_in={r.due_in} error={r.last_error!r}"
        for r in rows
    ]
    return "\n".join(
        [
            f"deliveries ({len(rows)}):",
            *lines,
            f"events undispatched={others.undispatched} queued promotions={others.promotions}",
        ]
    )


@contextlib.asynccontextmanager
async def widget_sink(
    db: Database,
    tenant: uuid.UUID,
    settings: Settings,
    keyring: Keyring,
    sink: Sink,
    **endpoint: Any,
) -> AsyncIterator[uuid.UUID]:
    """`sink` running, with an endpoint of `tenant` signed for it; yields the endpoint id.

    Widget events only: handlers registered by other test modules dead-letter widget
    events, and the engine announces that with operational events to the tenant, which
    would be extra deliveries here."""
    await sink.start()
    try:
        endpoint_id, secret = await make_endpoint(
            db, tenant, settings, keyring, sink.url, event_types=["widget.*"], **endpoint
        )
        sink.secrets = [secret]
        yield endpoint_id
    finally:
        await sink.stop()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_stop_releases_in_flight_leases(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    sink = Sink(mode="slow", delay=1.5)
    cfg = fast_settings.model_copy(update={"delivery_shutdown_seconds": 0.2})
    async with widget_sink(committed, tenant, cfg, keyring, sink) as endpoint:
        async with running_worker(cfg, committed, keyring):
            await publish_widgets(committed, tenant, aggregates=3)
            await eventually(
                lambda: scalar(
                    committed,
                    "SELECT count(*) = 3 FROM deliveries WHERE subscriber_id = :e "
                    "AND leased_until > now()",
                    e=endpoint,
                )
            )
        # Stopped mid-attempt: the leases were handed back, due now, not left to expire.
        assert (
            await scalar(
                committed,
                "SELECT count(*) FROM deliveries WHERE subscriber_id = :e "
                "AND (leased_until IS NOT NULL OR status <> 'pending' OR next_attempt_at > now())",
                e=endpoint,
            )
            == 0
        )


async def test_metrics_follow_deliveries(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    sink = Sink(mode="fail")
    cfg = fast_settings.model_copy(update={"webhooks_retry_schedule": []})
    async with widget_sink(committed, tenant, cfg, keyring, sink) as endpoint:
        before_dead = _metric("tradeflow_dead_letters_total", kind="webhook")
        before_fail = _metric("tradeflow_deliveries_total", kind="webhook", outcome="failure")
        before_written = _metric("tradeflow_events_written_total", type="widget.created")
        async with running_worker(cfg, committed, keyring):
            await publish_widgets(committed, tenant, aggregates=2)
            await eventually(
                lambda: scalar(
                    committed,
                    "SELECT count(*) = 2 FROM deliveries WHERE subscriber_id = :e "
                    "AND status = 'dead'",
                    e=endpoint,
                )
            )
        await refresh_gauges(committed)
        assert _metric("tradeflow_dead_letters_total", kind="webhook") == before_dead + 2
        assert (
            _metric("tradeflow_deliveries_total", kind="webhook", outcome="failure")
            == before_fail + 2
        )
        assert (
            _metric("tradeflow_events_written_total", type="widget.created") >= before_written + 2
        )
        assert _metric("tradeflow_dead_letters_stored") >= 2
        assert _metric("tradeflow_delivery_attempt_duration_seconds_count", kind="webhook") > 0
        assert REGISTRY.get_sample_value("tradeflow_breakers", {"state": "closed"}) is not None


async def test_capped_endpoint_goes_on_when_completions_are_written(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    # One request at a time to this endpoint, and a polling backstop far away: each next
    # delivery must be claimed because the previous completion was written (which frees
    # the endpoint's room), not because the poll came round.
    sink = Sink()
    cfg = fast_settings.model_copy(update={"delivery_poll_seconds": 60.0})
    async with widget_sink(committed, tenant, cfg, keyring, sink, max_in_flight=1) as endpoint:
        async with running_worker(cfg, committed, keyring) as worker:
            await publish_widgets(committed, tenant, aggregates=5)
            try:
                await eventually(
                    lambda: scalar(
                        committed,
                        "SELECT count(*) = 5 FROM deliveries WHERE subscriber_id = :e "
                        "AND status = 'delivered'",
                        e=endpoint,
                    ),
                    timeout=15,
                )
            except AssertionError as exc:
                # Say where the chain stopped: which deliveries, leased by whom, how often.
                raise AssertionError(
                    f"{exc}\n{await _deliveries_state(committed, endpoint)}\n"
                    f"worker {worker.name}; sink saw {len(sink.requests)} request(s)"
                ) from None
        assert len(sink.requests) == 5


async def test_redelivery_and_resume_wake_the_worker(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring
) -> None:
    """A redelivery and a resumed endpoint are sent at once, not at the next poll (which
    is a minute away here): both announce work when they commit."""
    sink = Sink()
    cfg = fast_settings.model_copy(update={"delivery_poll_seconds": 60.0})
    async with (
        widget_sink(committed, tenant, cfg, keyring, sink) as endpoint,
        running_worker(cfg, committed, keyring),
    ):
        (event_id,) = await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 1 FROM deliveries WHERE subscriber_id = :e "
                "AND event_id = :v AND status = 'delivered'",
                e=endpoint,
                v=event_id,
            ),
            timeout=10,
        )
        assert len(sink.requests) == 1
        delivery_id = await scalar(
            committed,
            "SELECT id FROM deliveries WHERE subscriber_id = :e AND event_id = :v",
            e=endpoint,
            v=event_id,
        )
        async with committed.tenant_session(tenant) as s:
            await service.redeliver(s, tenant, delivery_id)
            await s.commit()
        await eventually(lambda: len(sink.requests) == 2, timeout=5)

        async with committed.tenant_session(tenant) as s:
            await service.set_paused(s, tenant, endpoint, paused=True)
            await s.commit()
        await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 2 FROM deliveries WHERE subscriber_id = :e",
                e=endpoint,
            ),
            timeout=5,
        )
        assert len(sink.requests) == 2  # held while paused
        async with committed.tenant_session(tenant) as s:
            await service.set_paused(s, tenant, endpoint, paused=False)
            await s.commit()
        await eventually(lambda: len(sink.requests) == 3, timeout=5)
