"""The transactional outbox: `publish` writes an event in the caller's transaction.

    async def place_order(session: AsyncSession, ...) -> Order:
        order = ...                                   # the business change
        await publish(session, OrderCreated(order_id=order.id, ...),
                      tenant_id=order.tenant_id, aggregate_id=order.id)
        return order                                  # the caller commits both, or neither

The event row is one INSERT in the same transaction as the business change,
so there is no event without its commit and no commit without its event.
Publishing never talks to a remote system and never waits for delivery: the
worker's dispatcher fans committed events out to their subscribers.

Each event carries the next sequence number of its aggregate
(`tenant, aggregate_type, aggregate_id`). The counter row is locked until the
publishing transaction ends, so two transactions publishing for one aggregate
are serialised and a higher sequence never commits before a lower one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.events.catalogue import EventPayload
from tradeflow.kit.ids import uuid7


@dataclass(frozen=True, slots=True)
class Event:
    """A published event as stored in the outbox."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    payload: dict[str, Any]


_PUBLISH = text(
    """
    WITH stream AS (
      INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
      VALUES (:tenant_id, :aggregate_type, :aggregate_id, 1)
      ON CONFLICT (tenant_id, aggregate_type, aggregate_id)
      DO UPDATE SET last_sequence = es.last_sequence + 1
      RETURNING last_sequence
    )
    INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence,
                        occurred_at, payload, target_subscriber_id)
    SELECT :id, :tenant_id, :type, :version, :aggregate_type, :aggregate_id,
           stream.last_sequence, coalesce(:occurred_at, now()), :payload, :target
    FROM stream
    RETURNING sequence, occurred_at
    """
).bindparams(bindparam("payload", type_=JSONB))


async def publish(
    session: AsyncSession,
    event: EventPayload,
    *,
    tenant_id: uuid.UUID,
    aggregate_id: uuid.UUID | str,
    occurred_at: datetime | None = None,
    target_subscriber_id: uuid.UUID | None = None,
) -> Event:
    """Write `event` to the outbox inside the session's current transaction (never commits).

    `aggregate_id` identifies the thing the event is about (its aggregate type
    comes from the payload class); events of one aggregate are numbered and
    delivered in that order. `target_subscriber_id` limits delivery to one
    subscriber (a webhook endpoint's test send).
    """
    if occurred_at is not None and occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware (UTC)")
    payload = event.model_dump(mode="json")
    event_id = uuid7()
    row = (
        await session.execute(
            _PUBLISH,
            {
                "id": event_id,
                "tenant_id": tenant_id,
                "type": event.EVENT_TYPE,
                "version": event.EVENT_VERSION,
                "aggregate_type": event.AGGREGATE,
                "aggregate_id": str(aggregate_id),
                "occurred_at": occurred_at,
                "payload": payload,
                "target": target_subscriber_id,
            },
        )
    ).one()
    return Event(
        id=event_id,
        tenant_id=tenant_id,
        type=event.EVENT_TYPE,
        version=event.EVENT_VERSION,
        aggregate_type=event.AGGREGATE,
        aggregate_id=str(aggregate_id),
        sequence=row.sequence,
        occurred_at=row.occurred_at,
        payload=payload,
    )


# `_PUBLISH` in the driver's own dialect, for `publish_on_driver`.
_PUBLISH_DRIVER = """
WITH stream AS (
  INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
  VALUES ($2::uuid, $5::varchar, $6::varchar, 1)
  ON CONFLICT (tenant_id, aggregate_type, aggregate_id)
  DO UPDATE SET last_sequence = es.last_sequence + 1
  RETURNING last_sequence
)
INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence,
                    occurred_at, payload, target_subscriber_id)
SELECT $1::uuid, $2::uuid, $3::varchar, $4::int, $5::varchar, $6::varchar,
       stream.last_sequence, coalesce($7::timestamptz, now()), $8::text::jsonb, $9::uuid
FROM stream
RETURNING sequence
"""


async def publish_on_driver(
    connection: Any,
    event: EventPayload,
    *,
    tenant_id: uuid.UUID,
    aggregate_id: uuid.UUID | str,
    occurred_at: datetime | None = None,
    target_subscriber_id: uuid.UUID | None = None,
) -> int:
    """`publish` on a driver (asyncpg) connection already inside the caller's transaction
    (`tradeflow.db.driver_connection`), for hot paths that skip SQLAlchemy; the same row,
    the same per-aggregate sequence. Returns the event's sequence number."""
    if occurred_at is not None and occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware (UTC)")
    sequence = await connection.fetchval(
        _PUBLISH_DRIVER,
        uuid7(),
        tenant_id,
        event.EVENT_TYPE,
        event.EVENT_VERSION,
        event.AGGREGATE,
        str(aggregate_id),
        occurred_at,
        event.model_dump_json(),
        target_subscriber_id,
    )
    return int(sequence)


class RecordsEvents:
    """Mixin for aggregates that record events while they change (cosmicpython style).

    The unit of work (or the service, before the request commits) drains them
    into the outbox with `publish_recorded`, in the same transaction.
    """

    def record(self, event: EventPayload) -> None:
        pending: list[EventPayload] = self.__dict__.setdefault("_recorded_events", [])
        pending.append(event)

    def recorded_events(self) -> list[EventPayload]:
        pending: list[EventPayload] = self.__dict__.setdefault("_recorded_events", [])
        out = list(pending)
        pending.clear()
        return out


async def publish_recorded(
    session: AsyncSession,
    aggregate: RecordsEvents,
    *,
    tenant_id: uuid.UUID,
    aggregate_id: uuid.UUID | str,
) -> list[Event]:
    """Publish, in order, every event `aggregate` recorded since the last call."""
    return [
        await publish(session, event, tenant_id=tenant_id, aggregate_id=aggregate_id)
        for event in aggregate.recorded_events()
    ]
