"""A lease taken over counts against the retry budget: a poison message dead-letters.

A worker that dies during an attempt leaves its lease to expire; the next
claim takes the delivery over. Each such abandoned attempt is counted, so a
message that kills every worker that tries it ends as a dead letter instead of
being retried (and killing workers) forever.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from events.sink import Sink
from events.support import eventually, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import engine
from tradeflow.kit.keyring import Keyring
from webhooks.support import make_endpoint, publish_widgets


async def _claim_and_die(db: Database, settings: Settings, owner: str) -> list[int]:
    """Claim due deliveries as a worker that then dies: its lease is left to run out."""
    async with db.system_session() as s:
        await engine.dispatch_batch(s, limit=100)
        claimed = await engine.claim_batch(
            s, owner=owner, limit=10, kinds=["webhook"], handlers=[], settings=settings
        )
        await s.commit()
    async with db.system_session() as s:
        # The lease running out, without waiting for it.
        await s.execute(
            text(
                "UPDATE deliveries SET leased_until = now() - interval '1 second' "
                "WHERE lease_owner = :o"
            ),
            {"o": owner},
        )
        await s.commit()
    return [c.attempt for c in claimed]


@pytest.mark.parametrize(("deaths", "expected"), [(1, "delivered"), (2, "dead")])
async def test_lease_takeovers_use_the_retry_budget(
    committed: Database,
    tenant: uuid.UUID,
    fast_settings: Settings,
    keyring: Keyring,
    deaths: int,
    expected: str,
) -> None:
    # One retry: two attempts in all, whether they ended with an answer or a dead worker.
    settings = fast_settings.model_copy(update={"webhooks_retry_schedule": [0]})
    sink = Sink()
    await sink.start()
    try:
        endpoint, secret = await make_endpoint(
            committed, tenant, settings, keyring, sink.url, event_types=["widget.created"]
        )
        sink.secrets = [secret]
        [event_id] = await publish_widgets(committed, tenant)
        attempts_seen = []
        for n in range(deaths):
            attempts_seen += await _claim_and_die(committed, settings, f"doomed-{n}")
        # Each takeover counted the abandoned attempt before it.
        assert attempts_seen == list(range(1, deaths + 1))

        async with running_worker(settings, committed, keyring):
            await eventually(
                lambda: scalar(
                    committed,
                    "SELECT status FROM deliveries "
                    "WHERE subscriber_id = :s AND status <> 'pending'",
                    s=endpoint,
                )
            )
            if expected == "dead":
                await eventually(
                    lambda: scalar(
                        committed,
                        "SELECT count(*) FROM events WHERE type = 'delivery.exhausted' "
                        "AND payload->>'event_id' = :e",
                        e=str(event_id),
                    )
                )
        status = await scalar(
            committed, "SELECT status FROM deliveries WHERE subscriber_id = :s", s=endpoint
        )
        attempts = await scalar(
            committed, "SELECT attempts FROM deliveries WHERE subscriber_id = :s", s=endpoint
        )
        sent = [r for r in sink.requests if r.webhook_id == str(event_id)]
        assert status == expected
        assert attempts == 2
        if expected == "dead":
            # Budget used up by the dead workers: not sent again, recorded as why.
            assert sent == []
            error = await scalar(
                committed,
                "SELECT a.error FROM delivery_attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.subscriber_id = :s",
                s=endpoint,
            )
            assert "lease expired" in error
        else:
            assert len(sent) == 1
    finally:
        await sink.stop()
