"""The delivery engine's three database steps: dispatch, claim, complete.

* **dispatch** fans committed outbox events out into one `deliveries` row per
  matching subscriber, in one statement. One worker dispatches at a time
  (a transaction-scoped advisory try-lock; the others go on claiming) and
  takes events in `position` order, so an aggregate's events are never
  dispatched out of order or with a gap. It leases what it creates to its own
  worker (a ready head with the rest of its aggregate's run in the batch: a
  chain, sent in order by one task).
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
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Boolean, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import driver_connection
from tradeflow.events import metrics
from tradeflow.events.registry import Claimed, DeliveredEvent

DISPATCH_LOCK = 74_650_301
CLAIM_LOCK = 74_650_302


@dataclass(frozen=True, slots=True)
class Plain:
    """A statement as the driver takes it (`$n` parameters), for the engine's hot path:
    the worker runs these many times a second, and SQLAlchemy's per-statement work (and
    its result rows) cost as much of the worker's CPU as the driver's own."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: TextClause) -> Plain:
        compiled = statement.compile(dialect=asyncpg_dialect.dialect())  # type: ignore[no-untyped-call]
        return cls(str(compiled), tuple(compiled.positiontup or ()))

    async def fetch(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        """Run on the session's connection, inside its transaction (which must have begun)."""
        conn = await driver_connection(session)
        rows: list[Any] = await conn.fetch(self.sql, *(params[n] for n in self.names))
        return rows


# Which subscribers this worker may lease deliveries of right now, and how many more:
# enabled, not paused, of a kind it serves, breaker closed (or half-open: one probe),
# minus what is in flight across all workers. Shared by dispatch and claim.
_ROOM = """
      SELECT s.id, s.kind, s.name,
             -- Counted up to the cap only: a plain index walk that stops there (and
             -- marks the dead entries of finished leases as it passes them).
             cap.n - (SELECT count(*) FROM (
                        SELECT 1 FROM deliveries f
                        WHERE f.subscriber_id = s.id AND f.leased_until > now()
                        LIMIT cap.n) leased) AS room
      FROM subscribers s
      CROSS JOIN LATERAL (
        SELECT CASE WHEN s.breaker_state = 'open' THEN 1
                    WHEN s.kind = 'handler' THEN coalesce(s.max_in_flight, :handler_cap)
                    ELSE coalesce(s.max_in_flight, :default_cap) END AS n) cap
      WHERE s.enabled AND NOT s.paused
        AND s.kind = ANY(:kinds)
        AND (s.kind <> 'handler' OR s.name = ANY(:handlers))
        AND (s.breaker_state = 'closed' OR s.breaker_open_until <= now())
"""

_DISPATCH = text(
    """
    WITH batch AS (
      SELECT id, tenant_id, type, version, aggregate_type, aggregate_id, sequence, occurred_at,
             payload, target_subscriber_id, position
      FROM events
      WHERE dispatched_at IS NULL
      ORDER BY position
      LIMIT :limit
      FOR UPDATE
    ), fanout AS (
      SELECT b.tenant_id, b.id AS event_id, s.id AS subscriber_id, b.type, b.position,
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
    ), staged AS (
      -- Ready: the first of its (subscriber, aggregate) in this batch, with nothing
      -- earlier still pending; the others wait to be promoted in order.
      SELECT f.*,
             f.rn = 1 AND (
               SELECT 1 FROM deliveries p
               WHERE p.subscriber_id = f.subscriber_id AND p.aggregate = f.aggregate
                 AND p.status = 'pending' AND p.sequence < f.sequence
               LIMIT 1) IS NULL AS ready
      FROM fanout f
    ), room AS ("""  # noqa: S608 — a constant fragment, no input
    + _ROOM
    + """
    ), leasing AS (
      -- Deliveries this worker leases as it creates them (up to :claim, within each
      -- subscriber's room): no second claim round trip for a new event. A ready head
      -- brings the rest of its (subscriber, aggregate) run in this batch along — a chain
      -- the worker sends in order in one task — so a backlog of an aggregate's events
      -- needs no promotion and claim per event. Taken in position order, what is leased
      -- of a run is always a prefix of it.
      SELECT r.event_id, r.subscriber_id FROM (
        SELECT st.event_id, st.subscriber_id, st.position, room.room,
               row_number() OVER (PARTITION BY st.subscriber_id ORDER BY st.position) AS k
        FROM (SELECT s2.*, bool_or(s2.ready) OVER (PARTITION BY s2.subscriber_id,
                                                                 s2.aggregate) AS runs
              FROM staged s2) st
        JOIN room ON room.id = st.subscriber_id
        WHERE st.runs
      ) r
      WHERE r.k <= r.room
      ORDER BY r.position
      LIMIT :claim
    ), fanned AS (
      -- A leased delivery behind the head is marked ready too: the claim's order check
      -- still holds it until everything earlier of its aggregate is finished.
      INSERT INTO deliveries (tenant_id, event_id, subscriber_id, event_type, aggregate,
                              sequence, ready, leased_until, lease_owner, claims)
      SELECT st.tenant_id, st.event_id, st.subscriber_id, st.type, st.aggregate, st.sequence,
             st.ready OR l.event_id IS NOT NULL,
             CASE WHEN l.event_id IS NOT NULL THEN now() + make_interval(secs => :lease) END,
             CASE WHEN l.event_id IS NOT NULL THEN CAST(:owner AS text) END,
             CASE WHEN l.event_id IS NOT NULL THEN 1 ELSE 0 END
      FROM staged st
      LEFT JOIN leasing l ON l.event_id = st.event_id AND l.subscriber_id = st.subscriber_id
      ON CONFLICT (event_id, subscriber_id) DO NOTHING
      RETURNING id, event_id, subscriber_id, claims, attempts, lease_owner, ready
    ), queued AS (
      DELETE FROM delivery_promotions
      WHERE id IN (SELECT id FROM delivery_promotions ORDER BY id LIMIT :limit)
      RETURNING subscriber_id, aggregate
    ), heads AS (
      -- The first pending delivery of each queued (subscriber, aggregate), probed on
      -- ix_deliveries_order one pair at a time rather than joined against every pending
      -- delivery.
      SELECT h.id, h.ready
      FROM (SELECT DISTINCT subscriber_id, aggregate FROM queued) q
      CROSS JOIN LATERAL (
        SELECT d.id, d.ready FROM deliveries d
        WHERE d.subscriber_id = q.subscriber_id AND d.aggregate = q.aggregate
          AND d.status = 'pending'
        ORDER BY d.sequence
        LIMIT 1) h
    ), promoted AS (
      UPDATE deliveries d SET ready = true
      FROM heads WHERE d.id = heads.id AND NOT heads.ready
      RETURNING 1
    ), marked AS (
      UPDATE events e SET dispatched_at = now() FROM batch WHERE e.id = batch.id
      RETURNING e.type
    ), summary AS (
      SELECT (SELECT count(*) FROM fanned) AS deliveries,
             (SELECT count(*) FROM fanned WHERE ready AND lease_owner IS NULL) AS unleased,
             (SELECT count(*) FROM promoted) AS promoted,
             coalesce((SELECT array_agg(type) FROM marked), '{}') AS types
    ), announced AS (
      -- What the dispatch leaves for a claim (ready deliveries it did not lease, promoted
      -- successors) is announced on commit with :origin as the payload, so a worker that
      -- claims in the same transaction can ignore its own announcement; a full batch
      -- announces that more events may wait, for workers with free slots.
      SELECT pg_notify('tradeflow_work',
                       CASE WHEN unleased > 0 OR promoted > 0
                            THEN CAST(:origin AS text) ELSE 'e' END)
      FROM summary
      WHERE unleased > 0 OR promoted > 0 OR cardinality(types) >= :limit
    )
    SELECT summary.*, (SELECT count(*) FROM announced) AS announced, c.*
    FROM summary
    LEFT JOIN (
      SELECT f.id, f.claims, f.attempts, f.subscriber_id, room.kind, room.name,
             b.id AS event_id, b.tenant_id, b.type, b.version, b.aggregate_type,
             b.aggregate_id, b.sequence, b.occurred_at, b.payload, b.position
      FROM fanned f
      JOIN batch b ON b.id = f.event_id
      JOIN room ON room.id = f.subscriber_id
      WHERE f.lease_owner IS NOT NULL
    ) c ON true
    ORDER BY c.position
    """
).bindparams(bindparam("kinds", type_=ARRAY(TEXT)), bindparam("handlers", type_=ARRAY(TEXT)))


@dataclass(frozen=True, slots=True)
class DispatchResult:
    events: int
    deliveries: int
    promoted: int = 0
    claimed: list[Claimed] = field(default_factory=list)
    # Ready deliveries the dispatch created but did not lease (no room, a kind or handler
    # this worker does not serve, or no claim asked for): work for a claim.
    unleased: int = 0

    @property
    def claimable(self) -> bool:
        """Whether this dispatch left deliveries that only a claim will start."""
        return self.unleased > 0 or self.promoted > 0


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Lease up to `limit` of the ready deliveries a dispatch creates, for `owner`."""

    owner: str
    limit: int
    kinds: Sequence[str]
    handlers: Sequence[str]
    settings: Settings


_DISPATCH_PLAIN = Plain.of(_DISPATCH)
_CLAIM_LOCK = text(f"SELECT pg_advisory_xact_lock({CLAIM_LOCK})")
# The dispatch lock if it is free and then, when the dispatch will lease (which counts
# against caps and half-open probes like a claim does), the claim lock — in one round trip.
# The claim lock's subquery is evaluated only in the branch that reaches it.
_LOCKS = text(
    """
    SELECT CASE WHEN pg_try_advisory_xact_lock(:d)
                THEN CASE WHEN :claiming THEN (SELECT true FROM pg_advisory_xact_lock(:c))
                          ELSE true END
                ELSE false END
    """
).bindparams(bindparam("claiming", type_=Boolean))


async def dispatch_batch(
    session: AsyncSession, *, limit: int, origin: str = "d", claim: ClaimRequest | None = None
) -> DispatchResult | None:
    """Fan out up to `limit` committed events; None when another worker is dispatching.

    With `claim`, the ready deliveries it creates are leased to `claim.owner` in the same
    statement (as a claim would, with caps and breakers respected) and returned. What it
    leaves for a claim is announced on commit (see `announced` in the statement)."""
    leasing = claim is not None and claim.limit > 0
    got = (
        await session.execute(_LOCKS, {"d": DISPATCH_LOCK, "c": CLAIM_LOCK, "claiming": leasing})
    ).scalar_one()
    if not got:
        return None
    settings = claim.settings if claim is not None else None
    rows = await _DISPATCH_PLAIN.fetch(
        session,
        {
            "limit": limit,
            "origin": origin,
            "claim": claim.limit if claim is not None else 0,
            "owner": claim.owner if claim is not None else None,
            "lease": float(settings.delivery_lease_seconds) if settings else 0.0,
            "kinds": list(claim.kinds) if claim is not None else [],
            "handlers": list(claim.handlers) if claim is not None else [],
            "default_cap": settings.delivery_max_in_flight_per_endpoint if settings else 0,
            "handler_cap": settings.delivery_concurrency if settings else 0,
        },
    )
    head = rows[0]
    types: list[str] = list(head["types"])
    for event_type in types:
        metrics.EVENTS_WRITTEN.labels(event_type).inc()
    return DispatchResult(
        events=len(types),
        deliveries=int(head["deliveries"]),
        promoted=int(head["promoted"]),
        claimed=[_claimed(r, takeover=False) for r in rows if r["id"] is not None],
        unleased=int(head["unleased"]),
    )


def _claimed(r: Any, *, takeover: bool) -> Claimed:
    payload = r["payload"]
    return Claimed(
        delivery_id=r["id"],
        token=r["claims"],
        attempt=r["attempts"] + 1,
        subscriber_id=r["subscriber_id"],
        subscriber_kind=r["kind"],
        subscriber_name=r["name"],
        takeover=takeover,
        event=DeliveredEvent(
            id=r["event_id"],
            tenant_id=r["tenant_id"],
            type=r["type"],
            version=r["version"],
            aggregate_type=r["aggregate_type"],
            aggregate_id=r["aggregate_id"],
            sequence=r["sequence"],
            occurred_at=r["occurred_at"],
            # JSONB arrives decoded on the application's engine; as text on a bare driver.
            payload=orjson.loads(payload) if isinstance(payload, str) else payload,
        ),
    )


_CLAIM = text(
    """
    WITH subs AS ("""  # noqa: S608 — a constant fragment, no input
    + _ROOM
    + """
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
        claims = d.claims + 1,
        -- A takeover means the previous attempt ended without a result (its worker died):
        -- it counts against the retry budget, so a message that kills its workers
        -- eventually becomes a dead letter instead of being retried forever.
        attempts = d.attempts + CASE WHEN picked.takeover THEN 1 ELSE 0 END
    FROM picked JOIN events e ON e.id = picked.event_id
    WHERE d.id = picked.id
    RETURNING d.id, d.claims, d.attempts, d.subscriber_id, picked.kind, picked.name,
              picked.takeover, e.id AS event_id, e.tenant_id, e.type, e.version,
              e.aggregate_type, e.aggregate_id, e.sequence, e.occurred_at, e.payload
    """
).bindparams(bindparam("kinds", type_=ARRAY(TEXT)), bindparam("handlers", type_=ARRAY(TEXT)))


_CLAIM_PLAIN = Plain.of(_CLAIM)


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
    # The first statement goes through the session, which begins the transaction.
    await session.execute(_CLAIM_LOCK)
    rows = await _CLAIM_PLAIN.fetch(
        session,
        {
            "limit": limit,
            "owner": owner,
            "lease": float(settings.delivery_lease_seconds),
            "kinds": list(kinds),
            "handlers": list(handlers),
            "default_cap": settings.delivery_max_in_flight_per_endpoint,
            "handler_cap": settings.delivery_concurrency,
        },
    )
    claimed = [_claimed(r, takeover=r["takeover"]) for r in rows]
    takeovers = sum(1 for c in claimed if c.takeover)
    if takeovers:
        metrics.LEASE_TAKEOVERS.inc(takeovers)
    # Deliveries are claimed oldest-due first; within an aggregate that is sequence order.
    claimed.sort(key=lambda c: (c.event.aggregate_type, c.event.aggregate_id, c.event.sequence))
    return claimed


_RELEASE = text(
    """
    UPDATE deliveries d
    SET leased_until = NULL, lease_owner = NULL,
        next_attempt_at = now() + make_interval(secs => :delay)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS integer[])) AS u(id, token)
    WHERE d.id = u.id AND d.claims = u.token AND d.status = 'pending'
    """
)


async def release(session: AsyncSession, items: Sequence[Claimed], *, delay: float = 0.0) -> None:
    """Give leases back unattempted (shutdown, too little lease left to start safely, or a
    batch that could not start), due again after `delay` seconds. No attempt is counted:
    the next claim is not a takeover."""
    if items:
        await session.execute(
            _RELEASE,
            {
                "ids": [i.delivery_id for i in items],
                "tokens": [i.token for i in items],
                "delay": delay,
            },
        )
