"""The delivery engine's three database steps: dispatch, claim, complete.

* **dispatch** fans committed outbox events out into one `deliveries` row per
  matching subscriber, in one statement. One worker dispatches at a time
  (a transaction-scoped advisory try-lock; the others go on claiming) and
  takes events in `position` order, so an aggregate's events are never
  dispatched out of order or with a gap.
* **claim** leases due deliveries with `FOR UPDATE SKIP LOCKED`, honouring
  for each subscriber its pause, circuit breaker and in-flight cap, and for
  each (subscriber, aggregate) the order: a delivery waits while an earlier
  one of its aggregate is pending. Claims take a transaction-scoped advisory
  lock for the few milliseconds of the statement so that caps and half-open
  probes are exact across any number of workers.
* **complete** (`completion`) writes a batch of attempt results in one
  transaction, fenced on the claim counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.events import metrics
from tradeflow.events.registry import Claimed, DeliveredEvent

DISPATCH_LOCK = 74_650_301
CLAIM_LOCK = 74_650_302

_DISPATCH = text(
    """
    WITH batch AS (
      SELECT id, tenant_id, type, aggregate_type, aggregate_id, sequence, target_subscriber_id
      FROM events
      WHERE dispatched_at IS NULL
      ORDER BY position
      LIMIT :limit
      FOR UPDATE
    ), fanout AS (
      SELECT b.tenant_id, b.id AS event_id, s.id AS subscriber_id, b.type,
             b.aggregate_type || ':' || b.aggregate_id AS aggregate, b.sequence,
             row_number() OVER (PARTITION BY s.id, b.aggregate_type, b.aggregate_id
                                ORDER BY b.sequence) AS rn
      FROM batch b
      JOIN subscribers s
        ON s.enabled
       AND (s.tenant_id = b.tenant_id OR s.tenant_id IS NULL)
       AND CASE
             WHEN b.target_subscriber_id IS NOT NULL THEN s.id = b.target_subscriber_id
             ELSE s.event_types IS NULL OR EXISTS (
               SELECT 1 FROM unnest(s.event_types) AS p(pattern)
               WHERE p.pattern = b.type OR p.pattern = '*'
                  OR (right(p.pattern, 2) = '.*' AND starts_with(b.type, left(p.pattern, -1))))
           END
    ), fanned AS (
      -- Ready: the first of its (subscriber, aggregate) in this batch, with nothing
      -- earlier still pending; the others wait to be promoted in order.
      INSERT INTO deliveries (tenant_id, event_id, subscriber_id, event_type, aggregate,
                              sequence, ready)
      SELECT f.tenant_id, f.event_id, f.subscriber_id, f.type, f.aggregate, f.sequence,
             f.rn = 1 AND (
               SELECT 1 FROM deliveries p
               WHERE p.subscriber_id = f.subscriber_id AND p.aggregate = f.aggregate
                 AND p.status = 'pending' AND p.sequence < f.sequence
               LIMIT 1) IS NULL
      FROM fanout f
      ON CONFLICT (event_id, subscriber_id) DO NOTHING
      RETURNING 1
    ), queued AS (
      DELETE FROM delivery_promotions
      WHERE id IN (SELECT id FROM delivery_promotions ORDER BY id LIMIT :limit)
      RETURNING subscriber_id, aggregate
    ), heads AS (
      SELECT DISTINCT ON (d.subscriber_id, d.aggregate) d.id, d.ready
      FROM deliveries d
      JOIN (SELECT DISTINCT subscriber_id, aggregate FROM queued) q
        ON q.subscriber_id = d.subscriber_id AND q.aggregate = d.aggregate
      WHERE d.status = 'pending'
      ORDER BY d.subscriber_id, d.aggregate, d.sequence
    ), promoted AS (
      UPDATE deliveries d SET ready = true
      FROM heads WHERE d.id = heads.id AND NOT heads.ready
      RETURNING 1
    ), marked AS (
      UPDATE events e SET dispatched_at = now() FROM batch WHERE e.id = batch.id
      RETURNING e.type
    )
    SELECT (SELECT count(*) FROM fanned) AS deliveries,
           (SELECT count(*) FROM promoted) AS promoted,
           coalesce((SELECT array_agg(type) FROM marked), '{}') AS types
    """
)


@dataclass(frozen=True, slots=True)
class DispatchResult:
    events: int
    deliveries: int
    promoted: int = 0


async def dispatch_batch(session: AsyncSession, *, limit: int) -> DispatchResult | None:
    """Fan out up to `limit` committed events; None when another worker is dispatching."""
    got = (
        await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": DISPATCH_LOCK})
    ).scalar_one()
    if not got:
        return None
    row = (await session.execute(_DISPATCH, {"limit": limit})).one()
    types: list[str] = list(row.types)
    for event_type in types:
        metrics.EVENTS_WRITTEN.labels(event_type).inc()
    if row.deliveries or row.promoted:
        await session.execute(text("SELECT pg_notify('tradeflow_work', 'd')"))
    return DispatchResult(
        events=len(types), deliveries=int(row.deliveries), promoted=int(row.promoted)
    )


_CLAIM = text(
    """
    WITH subs AS (
      SELECT s.id, s.kind, s.name,
             CASE WHEN s.breaker_state = 'open' THEN 1
                  WHEN s.kind = 'handler' THEN coalesce(s.max_in_flight, :handler_cap)
                  ELSE coalesce(s.max_in_flight, :default_cap) END
             - (SELECT count(*) FROM deliveries f
                WHERE f.subscriber_id = s.id AND f.leased_until > now()) AS room
      FROM subscribers s
      WHERE s.enabled AND NOT s.paused
        AND s.kind = ANY(:kinds)
        AND (s.kind <> 'handler' OR s.name = ANY(:handlers))
        AND (s.breaker_state = 'closed' OR s.breaker_open_until <= now())
    ), picked AS (
      SELECT c.id, c.event_id, subs.kind, subs.name, c.takeover, c.next_attempt_at
      FROM subs
      CROSS JOIN LATERAL (
        SELECT d.id, d.event_id, d.next_attempt_at, (d.lease_owner IS NOT NULL) AS takeover
        FROM deliveries d
        WHERE d.subscriber_id = subs.id
          AND d.status = 'pending'
          AND d.ready
          AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until <= now())
          -- The earliest pending delivery of its aggregate. A scalar subquery, not
          -- NOT EXISTS: the planner keeps it a per-row index probe on ix_deliveries_order
          -- instead of an anti-join that can degrade to scanning the subscriber's backlog.
          AND (SELECT p.sequence FROM deliveries p
               WHERE p.subscriber_id = d.subscriber_id AND p.aggregate = d.aggregate
                 AND p.status = 'pending'
               ORDER BY p.sequence LIMIT 1) = d.sequence
        ORDER BY d.next_attempt_at
        LIMIT greatest(subs.room, 0)
        FOR UPDATE OF d SKIP LOCKED
      ) c
      WHERE subs.room > 0
      ORDER BY c.next_attempt_at
      LIMIT :limit
    )
    UPDATE deliveries d
    SET leased_until = now() + make_interval(secs => :lease),
        lease_owner = :owner,
        claims = d.claims + 1
    FROM picked JOIN events e ON e.id = picked.event_id
    WHERE d.id = picked.id
    RETURNING d.id, d.claims, d.attempts, d.subscriber_id, picked.kind, picked.name,
              picked.takeover, e.id AS event_id, e.tenant_id, e.type, e.version,
              e.aggregate_type, e.aggregate_id, e.sequence, e.occurred_at, e.payload
    """
).bindparams(bindparam("kinds", type_=ARRAY(TEXT)), bindparam("handlers", type_=ARRAY(TEXT)))


async def claim_batch(
    session: AsyncSession,
    *,
    owner: str,
    limit: int,
    kinds: Sequence[str],
    handlers: Sequence[str],
    settings: Settings,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries for this worker (the caller commits)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
    rows = (
        await session.execute(
            _CLAIM,
            {
                "limit": limit,
                "owner": owner,
                "lease": settings.delivery_lease_seconds,
                "kinds": list(kinds),
                "handlers": list(handlers),
                "default_cap": settings.delivery_max_in_flight_per_endpoint,
                "handler_cap": settings.delivery_concurrency,
            },
        )
    ).all()
    claimed = [
        Claimed(
            delivery_id=r.id,
            token=r.claims,
            attempt=r.attempts + 1,
            subscriber_id=r.subscriber_id,
            subscriber_kind=r.kind,
            subscriber_name=r.name,
            takeover=r.takeover,
            event=DeliveredEvent(
                id=r.event_id,
                tenant_id=r.tenant_id,
                type=r.type,
                version=r.version,
                aggregate_type=r.aggregate_type,
                aggregate_id=r.aggregate_id,
                sequence=r.sequence,
                occurred_at=r.occurred_at,
                payload=r.payload,
            ),
        )
        for r in rows
    ]
    takeovers = sum(1 for c in claimed if c.takeover)
    if takeovers:
        metrics.LEASE_TAKEOVERS.inc(takeovers)
    # Deliveries are claimed oldest-due first; within an aggregate that is sequence order.
    claimed.sort(key=lambda c: (c.event.aggregate_type, c.event.aggregate_id, c.event.sequence))
    return claimed


_RELEASE = text(
    """
    UPDATE deliveries d
    SET leased_until = NULL, lease_owner = NULL, next_attempt_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS integer[])) AS u(id, token)
    WHERE d.id = u.id AND d.claims = u.token AND d.status = 'pending'
    """
)


async def release(session: AsyncSession, items: Sequence[Claimed]) -> None:
    """Give leases back unattempted (shutdown, or too little lease left to start safely)."""
    if items:
        await session.execute(
            _RELEASE,
            {"ids": [i.delivery_id for i in items], "tokens": [i.token for i in items]},
        )
