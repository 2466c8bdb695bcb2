"""A claimed batch whose transport cannot start it does not burn attempts on takeovers.

An endpoint the transport cannot serve (its secret does not decrypt) gets failed
attempts saying why, and dead-letters by the schedule; a batch whose start fails as a
whole (e.g. a database error loading endpoints) is handed back at once, uncounted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from events.sink import Sink
from events.support import eventually, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import metrics
from tradeflow.events.registry import (
    TRANSPORTS,
    AttemptResult,
    Claimed,
    TransportDeps,
    register_transport,
)
from tradeflow.kit.keyring import Keyring
from tradeflow.webhooks.transport import WebhookTransport
from webhooks.support import make_endpoint, publish_widgets


def _takeovers() -> float:
    return float(metrics.LEASE_TAKEOVERS._value.get())


async def _attempt_log(db: Database, endpoint: uuid.UUID) -> list[Any]:
    async with db.system_session() as s:
        return list(
            (
                await s.execute(
                    text(
                        "SELECT a.attempt, a.outcome, a.error FROM delivery_attempts a "
                        "JOIN deliveries d ON d.id = a.delivery_id "
                        "WHERE d.subscriber_id = :e ORDER BY a.attempt"
                    ),
                    {"e": endpoint},
                )
            ).all()
        )


async def test_undecryptable_secret_fails_attempts_then_dead_letters(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fast_settings.model_copy(update={"webhooks_retry_schedule": [0, 0]})
    bad, _ = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    good, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    async with committed.system_session() as s:
        # The other endpoint's ciphertext: bound to another row, so it fails authentication.
        await s.execute(
            text(
                "UPDATE webhook_endpoints SET secret_ciphertext = "
                "(SELECT secret_ciphertext FROM webhook_endpoints WHERE id = :good) "
                "WHERE id = :bad"
            ),
            {"good": good, "bad": bad},
        )
        await s.commit()
    takeovers = _takeovers()
    async with running_worker(settings, committed, keyring):
        [event_id] = await publish_widgets(committed, tenant)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) FROM events WHERE type = 'delivery.exhausted' "
                "AND payload->>'event_id' = :e",
                e=str(event_id),
            )
        )
        await eventually(
            lambda: scalar(
                committed,
                "SELECT status = 'delivered' FROM deliveries WHERE subscriber_id = :s",
                s=good,
            )
        )
    status, attempts = (
        await scalar(committed, "SELECT status FROM deliveries WHERE subscriber_id = :s", s=bad),
        await scalar(committed, "SELECT attempts FROM deliveries WHERE subscriber_id = :s", s=bad),
    )
    assert (status, attempts) == ("dead", 3)
    log = await _attempt_log(committed, bad)
    assert [r.attempt for r in log] == [1, 2, 3]
    assert all(r.outcome == "failure" for r in log)
    assert all(r.error.startswith("setup_failed: ") for r in log)
    assert all("cannot be decrypted" in r.error for r in log)
    assert _takeovers() == takeovers
    # The other endpoint of the same batch was not held up.
    assert [r.webhook_id for r in sink.requests] == [str(event_id)]
    assert [r.outcome for r in await _attempt_log(committed, good)] == ["success"]


class _FailsToStartOnce(WebhookTransport):
    """The real webhook transport, whose first batch cannot start (as with the database
    unreachable while endpoints load)."""

    prepared: list[int] = []

    async def prepare(self, items: Sequence[Claimed]) -> dict[uuid.UUID, str] | None:
        type(self).prepared.append(len(items))
        if len(type(self).prepared) == 1:
            raise ConnectionError("database unreachable while loading endpoints")
        return await super().prepare(items)

    async def deliver(self, item: Claimed) -> AttemptResult:
        return await super().deliver(item)


async def test_batch_that_cannot_start_is_handed_back_at_once(
    committed: Database, tenant: uuid.UUID, fast_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    # A lease far longer than the wait below: only an immediate hand-back delivers in time.
    settings = fast_settings.model_copy(update={"delivery_lease_seconds": 60.0})
    endpoint, secret = await make_endpoint(
        committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
    )
    sink.secrets = [secret]
    takeovers = _takeovers()
    original = TRANSPORTS["webhook"]
    _FailsToStartOnce.prepared = []

    def factory(deps: TransportDeps) -> _FailsToStartOnce:
        return _FailsToStartOnce(deps)

    register_transport("webhook", factory)
    try:
        async with running_worker(settings, committed, keyring):
            [event_id] = await publish_widgets(committed, tenant)
            await eventually(
                lambda: scalar(
                    committed,
                    "SELECT status = 'delivered' FROM deliveries WHERE subscriber_id = :s",
                    s=endpoint,
                ),
                timeout=5.0,
            )
    finally:
        register_transport("webhook", original)
    assert len(_FailsToStartOnce.prepared) >= 2
    attempts = await scalar(
        committed, "SELECT attempts FROM deliveries WHERE subscriber_id = :s", s=endpoint
    )
    assert attempts == 1
    assert [(r.attempt, r.outcome) for r in await _attempt_log(committed, endpoint)] == [
        (1, "success")
    ]
    assert [r.webhook_id for r in sink.requests] == [str(event_id)]
    assert _takeovers() == takeovers
