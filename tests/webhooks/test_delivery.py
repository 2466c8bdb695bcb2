"""Webhook delivery end to end: a worker, a real sink on 127.0.0.1, and the failure paths."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from events.sink import Sink
from events.support import eventually, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from webhooks.support import make_endpoint, publish_widgets


async def _statuses(db: Database, endpoint: uuid.UUID) -> dict[str, int]:
    async with db.system_session() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT status, count(*) AS n FROM deliveries WHERE subscriber_id = :e "
                    "GROUP BY status"
                ),
                {"e": endpoint},
            )
        ).all()
    return {r.status: r.n for r in rows}


async def test_signed_ordered_delivery(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    endpoint, secret = await make_endpoint(
        committed, tenant, fast_settings, keyring, sink.url, event_types=["widget.*"]
    )
    sink.secrets = [secret]
    async with running_worker(fast_settings, committed, keyring):
        ids = await publish_widgets(committed, tenant, aggregates=5, per_aggregate=4)
        await eventually(lambda: len(sink.effects) >= 20)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 20 FROM deliveries WHERE subscriber_id = :e "
                "AND status = 'delivered'",
                e=endpoint,
            )
        )
    assert set(sink.effects) == {str(i) for i in ids}
    assert sink.bad_signatures == 0
    assert sink.out_of_order() == {}
    assert sink.overlaps == []
    assert all(len(v) == 4 for v in sink.order.values())
    first = sink.requests[0].headers
    assert first["webhook-signature"].startswith("v1,")
    assert first["webhook-id"] in sink.effects


async def test_failures_retry_then_recover_and_emit_recovered(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(update={"webhooks_retry_schedule": [0.2, 0.2, 0.2, 0.2]})
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "fail"
    async with running_worker(settings, committed, keyring):
        [event_id] = await publish_widgets(committed, tenant)
        await eventually(lambda: len(sink.requests) >= 2)
        sink.mode = "ok"
        await eventually(lambda: str(event_id) in sink.effects)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM events WHERE type = 'delivery.recovered' "
                "AND aggregate_id = :e",
                e=str(endpoint),
            )
        )
    attempts = await scalar(
        committed,
        "SELECT count(*) FROM delivery_attempts a JOIN deliveries d "
        "ON d.id = a.delivery_id WHERE d.subscriber_id = :e",
        e=endpoint,
    )
    assert attempts >= 3
    assert (
        await scalar(
            committed, "SELECT consecutive_failures FROM subscribers WHERE id = :e", e=endpoint
        )
        == 0
    )


async def test_exhausted_delivery_is_dead_letter_with_event(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(
        update={"webhooks_retry_schedule": [0, 0], "breaker_failure_threshold": 100}
    )
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "fail"
    async with running_worker(settings, committed, keyring):
        [event_id] = await publish_widgets(committed, tenant)
        await eventually(lambda: _statuses(committed, endpoint))
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM events WHERE type = 'delivery.exhausted' "
                "AND payload->>'event_id' = :e",
                e=str(event_id),
            )
        )
    assert await _statuses(committed, endpoint) == {"dead": 1}
    assert len([r for r in sink.requests if r.webhook_id == str(event_id)]) == 3
    assert (
        await scalar(
            committed,
            "SELECT last_status_code FROM deliveries WHERE event_id = :e AND subscriber_id = :s",
            e=event_id,
            s=endpoint,
        )
        == 500
    )


async def test_gone_disables_endpoint(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    endpoint, secret = await make_endpoint(
        committed, tenant, fast_settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "gone"
    async with running_worker(fast_settings, committed, keyring):
        await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM events WHERE type = 'endpoint.disabled' "
                "AND aggregate_id = :e",
                e=str(endpoint),
            )
        )
        # Later events are not delivered to a disabled endpoint.
        await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(committed, "SELECT count(*) = 0 FROM events WHERE dispatched_at IS NULL")
        )
    assert (
        await scalar(committed, "SELECT disabled_reason FROM subscribers WHERE id = :e", e=endpoint)
        == "gone"
    )
    assert len(sink.requests) == 1


async def test_breaker_opens_and_holds_deliveries(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(
        update={
            "breaker_failure_threshold": 3,
            "breaker_cooldown_seconds": 60,
            "webhooks_retry_schedule": [0] * 10,
            "delivery_max_in_flight_per_endpoint": 1,
        }
    )
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "fail"
    async with running_worker(settings, committed, keyring):
        await publish_widgets(committed, tenant, aggregates=10)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT breaker_state = 'open' FROM subscribers WHERE id = :e",
                e=endpoint,
            )
        )
        seen = len(sink.requests)
        # While open, nothing more is attempted (the cooldown is a minute).
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 10 FROM deliveries WHERE subscriber_id = :e",
                e=endpoint,
            )
        )
        async with committed.system_session() as s:
            leased = (
                await s.execute(
                    text(
                        "SELECT count(*) FROM deliveries WHERE subscriber_id = :e "
                        "AND leased_until IS NOT NULL"
                    ),
                    {"e": endpoint},
                )
            ).scalar()
        assert leased == 0
    assert seen == 3
    assert len(sink.requests) == 3


async def test_retry_after_is_honoured(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(update={"webhooks_retry_schedule": [0, 3600]})
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "retry_after"
    sink.retry_after = "120"
    async with running_worker(settings, committed, keyring):
        await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT attempts = 1 FROM deliveries WHERE subscriber_id = :e",
                e=endpoint,
            )
        )
    wait = await scalar(
        committed,
        "SELECT extract(epoch FROM next_attempt_at - last_attempt_at) "
        "FROM deliveries WHERE subscriber_id = :e",
        e=endpoint,
    )
    assert 110 <= float(wait) <= 130


async def test_redirects_are_not_followed(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(update={"webhooks_retry_schedule": []})
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    sink.mode = "redirect"
    async with running_worker(settings, committed, keyring):
        await publish_widgets(committed, tenant)
        await eventually(lambda: _statuses(committed, endpoint))
        await eventually(
            lambda: scalar(
                committed,
                "SELECT status = 'dead' FROM deliveries WHERE subscriber_id = :e",
                e=endpoint,
            )
        )
    assert len(sink.requests) == 1
    assert (
        await scalar(
            committed,
            "SELECT last_status_code FROM deliveries WHERE subscriber_id = :e",
            e=endpoint,
        )
        == 302
    )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_ssrf_guard_blocks_private_targets_at_delivery_time(
    committed: Database,
    tenant: uuid.UUID,
    fast_settings: Settings,
    keyring: Keyring,
    sink: Sink,
    host: str,
) -> None:
    # Registered while private targets were allowed; the worker now refuses them — a name
    # after resolving it, an IP literal (which the HTTP client never resolves) as loaded —
    # so nothing reaches the sink.
    endpoint, _ = await make_endpoint(
        committed,
        tenant,
        fast_settings,
        keyring,
        f"http://{host}:{sink.port}/hook",
        event_types=["widget.created"],
    )
    strict = fast_settings.model_copy(
        update={"webhooks_allow_private": False, "webhooks_retry_schedule": []}
    )
    async with running_worker(strict, committed, keyring):
        await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT status = 'dead' FROM deliveries WHERE subscriber_id = :e",
                e=endpoint,
            )
        )
    assert sink.requests == []
    outcome, error = await scalar(
        committed,
        "SELECT array[a.outcome, a.error] FROM delivery_attempts a "
        "JOIN deliveries d ON d.id = a.delivery_id WHERE d.subscriber_id = :e",
        e=endpoint,
    )
    assert outcome == "blocked"
    assert "loopback" in error
