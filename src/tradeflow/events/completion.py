"""Completion: a batch of attempt results written in one transaction, fenced on the claim.

Each update applies only if the delivery's claim counter still equals the one
the attempt was leased with, so a worker whose lease was taken over cannot
overwrite the newer attempt's outcome. The same transaction queues the
promotion of each finished delivery's successor, updates circuit breakers and
failure streaks, and publishes `delivery.exhausted`, `delivery.recovered` and
`endpoint.disabled` through the outbox.
"""

from __future__ import annotations

import functools
import random
import traceback
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.events import metrics
from tradeflow.events.events import (
    OPERATIONAL_EVENT_TYPES,
    DeliveryExhausted,
    DeliveryRecovered,
    EndpointDisabled,
)
from tradeflow.events.outbox import publish
from tradeflow.events.registry import AttemptResult, Claimed
from tradeflow.kit.time import utcnow


def retry_delay(schedule: Sequence[float], attempt: int, *, jitter: float) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based); None when exhausted."""
    if attempt > len(schedule):
        return None
    base = float(schedule[attempt - 1])
    return base * (1 + random.uniform(-jitter, jitter)) if base else 0.0  # noqa: S311


@dataclass(slots=True)
class Completion:
    item: Claimed
    result: AttemptResult
    worker: str


# One round trip for the whole batch: outcomes (fenced on the claim counter), the
# promotion of each finished delivery's successor, the attempt log, and — for endpoints
# whose results in the batch were all successes and which were healthy already — the
# subscriber's last success. Everything else about subscribers goes the slow path.
_COMPLETE = text(
    """
    WITH target AS (
      -- Each delivery is fetched by its key and locked, in id order (as every bulk update
      -- of deliveries does, so two transactions updating overlapping sets cannot
      -- deadlock). Key probes, never a plan that walks a partial index of pending
      -- deliveries: statistics on a queue table go stale within seconds, and such a plan
      -- reads every pending delivery and the dead index entries behind them.
      SELECT u.*
      FROM (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:tokens AS integer[]),
                                 CAST(:statuses AS text[]), CAST(:attempts AS integer[]),
                                 CAST(:next_at AS timestamptz[]), CAST(:codes AS integer[]),
                                 CAST(:errors AS text[]), CAST(:started AS timestamptz[]))
                   AS u(id, token, status, attempt, next_at, code, error, started_at)
            ORDER BY id) u
      CROSS JOIN LATERAL (
        SELECT d.id FROM deliveries d WHERE d.id = u.id FOR UPDATE) l
    ), done AS (
      UPDATE deliveries d
      SET status = u.status,
          attempts = u.attempt,
          next_attempt_at = coalesce(u.next_at, d.next_attempt_at),
          leased_until = NULL,
          lease_owner = NULL,
          last_attempt_at = u.started_at,
          last_status_code = u.code,
          last_error = u.error,
          delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END,
          dead_at = CASE WHEN u.status = 'dead' THEN now() ELSE d.dead_at END
      FROM target u
      -- Fenced on the claim counter; the status test is written so that it cannot match
      -- the partial indexes on pending deliveries (see above).
      WHERE d.id = u.id AND d.claims = u.token AND (d.status = 'pending') IS TRUE
      RETURNING d.id, d.tenant_id, d.subscriber_id, d.aggregate, d.status
    ), promoted AS (
      -- A finished delivery lets the next one of its (subscriber, aggregate) go: the
      -- dispatcher marks it ready. Queued unconditionally — a successor may be committing
      -- concurrently.
      INSERT INTO delivery_promotions (tenant_id, subscriber_id, aggregate)
      SELECT tenant_id, subscriber_id, aggregate FROM done WHERE status <> 'pending'
    ), logged AS (
      INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, started_at, duration_ms,
                                     outcome, status_code, error, response_body, worker)
      SELECT * FROM unnest(CAST(:a_tenants AS uuid[]), CAST(:ids AS uuid[]),
                           CAST(:attempts AS integer[]), CAST(:started AS timestamptz[]),
                           CAST(:durations AS double precision[]), CAST(:outcomes AS text[]),
                           CAST(:codes AS integer[]), CAST(:raw_errors AS text[]),
                           CAST(:bodies AS text[]), CAST(:workers AS text[]))
    ), healthy AS (
      -- Subscribers with nothing to reset: all-success results need no more than a
      -- fresh last_success_at, written at most once a second (one hot row otherwise
      -- serialises every worker's completions).
      SELECT id, last_success_at FROM subscribers
      WHERE id = ANY(CAST(:ok_subs AS uuid[]))
        AND consecutive_failures = 0 AND failing_since IS NULL
        AND breaker_state = 'closed' AND breaker_trips = 0
    ), touched AS (
      UPDATE subscribers s SET last_success_at = now(), updated_at = now()
      FROM (SELECT id FROM healthy
            WHERE last_success_at IS NULL OR last_success_at < now() - interval '1 second'
            ORDER BY id) stale
      WHERE s.id = stale.id
        AND (s.last_success_at IS NULL OR s.last_success_at < now() - interval '1 second')
    )
    SELECT 'd' AS kind, id, tenant_id, subscriber_id, aggregate, status FROM done
    UNION ALL
    SELECT 's', id, NULL, NULL, NULL, NULL FROM healthy
    UNION ALL
    -- Finished deliveries with a later one of their (subscriber, aggregate) waiting and
    -- not leased (a leased one is already in a worker's chain): the next dispatch
    -- promotes it, so the worker looks again now.
    -- (One index probe per finished delivery: a LATERAL ... LIMIT 1 cannot be turned
    -- into a join against every pending delivery.)
    SELECT 'n', x.id, NULL, NULL, NULL, NULL FROM done x
    CROSS JOIN LATERAL (
      SELECT 1 FROM deliveries p
      WHERE p.subscriber_id = x.subscriber_id AND p.aggregate = x.aggregate
        AND p.status = 'pending' AND p.id <> ALL(CAST(:ids AS uuid[]))
        AND (p.leased_until IS NULL OR p.leased_until <= now())
      LIMIT 1) waiting
    WHERE x.status <> 'pending'
    UNION ALL
    -- Endpoints whose room this batch frees while deliveries of theirs wait unleased
    -- (held by the in-flight cap): the worker claims again now.
    SELECT 'w', w.subscriber_id, NULL, NULL, NULL, NULL
    FROM (SELECT DISTINCT subscriber_id FROM done) w
    CROSS JOIN LATERAL (
      SELECT 1 FROM deliveries q
      WHERE q.subscriber_id = w.subscriber_id AND q.status = 'pending' AND q.ready
        AND q.next_attempt_at <= now()
        AND (q.leased_until IS NULL OR q.leased_until <= now())
        AND q.id <> ALL(CAST(:ids AS uuid[]))
      LIMIT 1) held
    """
)


@dataclass(slots=True)
class _Verdict:
    status: str
    next_at: datetime | None


@dataclass(frozen=True, slots=True)
class Completed:
    """What a written batch means for the worker's next look at the queue."""

    accepted: set[uuid.UUID]  # deliveries whose outcome was recorded (the fence held)
    successors: int = 0  # finished deliveries with a later one of their aggregate waiting
    held: int = 0  # endpoints in the batch with due deliveries waiting unleased
    retry_at: datetime | None = None  # when the earliest retry in the batch comes due


async def complete_batch(
    session: AsyncSession,
    completions: Sequence[Completion],
    *,
    settings: Settings,
    breaker_kinds: frozenset[str],
) -> Completed:
    """Record a batch of attempt results."""
    if not completions:
        return Completed(set())
    now = utcnow()
    # Only a failure needs its retry schedule (a tenant's policy is a query).
    failed = [c for c in completions if not c.result.ok]
    schedules = await _schedules(session, failed, settings) if failed else {}
    verdicts = [_verdict(c, schedules, settings, now) for c in completions]
    # Subscribers whose results in this batch are all successes: the fast path.
    ok_subs = {c.item.subscriber_id for c in completions} - {c.item.subscriber_id for c in failed}
    params: dict[str, list[Any]] = defaultdict(list)
    for c, v in zip(completions, verdicts, strict=True):
        r = c.result
        params["ids"].append(c.item.delivery_id)
        params["tokens"].append(c.item.token)
        params["statuses"].append(v.status)
        params["attempts"].append(c.item.attempt)
        params["next_at"].append(v.next_at)
        params["codes"].append(r.status_code)
        params["errors"].append(_short(r.error, 2000))
        params["started"].append(r.started_at or now)
        params["a_tenants"].append(c.item.event.tenant_id)
        params["durations"].append(round(r.duration * 1000, 3))
        params["outcomes"].append(r.outcome)
        params["raw_errors"].append(r.error)
        params["bodies"].append(r.response_body)
        params["workers"].append(c.worker)
    rows = (await session.execute(_COMPLETE, {**params, "ok_subs": sorted(ok_subs)})).all()
    accepted = {r.id for r in rows if r.kind == "d"}
    settled_subs = {r.id for r in rows if r.kind == "s"}
    successors = sum(1 for r in rows if r.kind == "n")
    held = sum(1 for r in rows if r.kind == "w")
    for c, v in zip(completions, verdicts, strict=True):
        _counter(c.item.subscriber_kind, c.result.outcome).inc()
        _latency(c.item.subscriber_kind).observe(c.result.duration)
        if c.item.delivery_id in accepted and v.status == "dead":
            metrics.DEAD_LETTERS.labels(c.item.subscriber_kind).inc()
            if c.item.event.type not in OPERATIONAL_EVENT_TYPES:
                # Not for operational events themselves: a dead endpoint subscribed to
                # everything would otherwise feed itself one exhaustion per exhaustion.
                await publish(
                    session,
                    DeliveryExhausted(
                        delivery_id=c.item.delivery_id,
                        subscriber_id=c.item.subscriber_id,
                        subscriber_kind=c.item.subscriber_kind,
                        event_id=c.item.event.id,
                        event_type=c.item.event.type,
                        attempts=c.item.attempt,
                        last_status_code=c.result.status_code,
                        last_error=_short(c.result.error, 500),
                    ),
                    tenant_id=c.item.event.tenant_id,
                    aggregate_id=c.item.subscriber_id,
                )
    rest = [c for c in completions if c.item.subscriber_id not in settled_subs]
    if rest:
        await _update_subscribers(session, rest, settings, breaker_kinds, now)
    retries = [v.next_at for v in verdicts if v.status == "pending" and v.next_at is not None]
    return Completed(accepted, successors, held, min(retries, default=None))


@functools.cache
def _counter(kind: str, outcome: str) -> Any:
    # The labelled child, looked up once per (kind, outcome) rather than per attempt.
    return metrics.DELIVERIES.labels(kind, outcome)


@functools.cache
def _latency(kind: str) -> Any:
    return metrics.ATTEMPT_LATENCY.labels(kind)


def _short(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


async def _schedules(
    session: AsyncSession, completions: Sequence[Completion], settings: Settings
) -> dict[uuid.UUID, list[float]]:
    return await tenant_schedules(session, [c.item for c in completions])


async def tenant_schedules(
    session: AsyncSession, items: Sequence[Claimed]
) -> dict[uuid.UUID, list[float]]:
    """Tenants' own retry schedules (delivery policies) for these remote deliveries."""
    tenants = list({i.event.tenant_id for i in items if i.subscriber_kind != "handler"})
    if not tenants:
        return {}
    rows = await session.execute(
        text(
            "SELECT tenant_id, retry_schedule FROM delivery_policies "
            "WHERE tenant_id = ANY(CAST(:t AS uuid[]))"
        ),
        {"t": tenants},
    )
    return {r.tenant_id: list(r.retry_schedule) for r in rows}


def schedule_for(
    item: Claimed, schedules: dict[uuid.UUID, list[float]], settings: Settings
) -> Sequence[float]:
    if item.subscriber_kind == "handler":
        return settings.handler_retry_schedule
    return schedules.get(item.event.tenant_id, settings.webhooks_retry_schedule)


async def abandoned_beyond_budget(
    session: AsyncSession,
    claimed: Sequence[Claimed],
    *,
    settings: Settings,
    worker: str,
) -> list[Completion]:
    """Taken-over deliveries whose abandoned attempts used up the retry budget.

    A lease taken over means an attempt ended without a result — typically its
    worker died during it. The claim counts that attempt; when it was the last
    one the schedule allows, the delivery is not sent again but recorded as a
    failed attempt, which makes it a dead letter: a message that kills every
    worker that tries it cannot be retried forever.
    """
    takeovers = [c for c in claimed if c.takeover]
    if not takeovers:
        return []
    schedules = await tenant_schedules(session, takeovers)
    out: list[Completion] = []
    for item in takeovers:
        used = item.attempt - 1  # attempts made so far, the abandoned one included
        if used > len(schedule_for(item, schedules, settings)):
            out.append(
                Completion(
                    replace(item, attempt=used),
                    AttemptResult(
                        outcome="failure",
                        error=(
                            "the lease expired without a result (the worker stopped during "
                            f"the attempt) {used} time(s); retry budget used up"
                        ),
                    ),
                    worker,
                )
            )
    return out


def _verdict(
    c: Completion, schedules: dict[uuid.UUID, list[float]], settings: Settings, now: datetime
) -> _Verdict:
    r = c.result
    if r.ok:
        return _Verdict("delivered", None)
    if r.outcome == "gone":
        return _Verdict("dead", None)
    schedule = schedule_for(c.item, schedules, settings)
    delay = retry_delay(schedule, c.item.attempt, jitter=settings.delivery_retry_jitter)
    if delay is None:
        return _Verdict("dead", None)
    if r.retry_after is not None:
        # Honour Retry-After, but never beyond the longest wait of the schedule.
        ceiling = float(max(schedule, default=0) or delay)
        delay = max(delay, min(r.retry_after, ceiling))
    return _Verdict("pending", now + timedelta(seconds=delay))


@dataclass(slots=True)
class _Tally:
    successes: int = 0
    trailing_failures: int = 0
    failures: int = 0
    first_failure_at: datetime | None = None
    gone: bool = False
    last_success_delivery: uuid.UUID | None = None


async def _update_subscribers(
    session: AsyncSession,
    completions: Sequence[Completion],
    settings: Settings,
    breaker_kinds: frozenset[str],
    now: datetime,
) -> None:
    tallies: dict[uuid.UUID, _Tally] = defaultdict(_Tally)
    for c in sorted(completions, key=lambda c: c.result.started_at or now):
        t = tallies[c.item.subscriber_id]
        if c.result.ok:
            t.successes += 1
            t.trailing_failures = 0
            t.first_failure_at = None
            t.last_success_delivery = c.item.delivery_id
        else:
            t.failures += 1
            t.trailing_failures += 1
            if t.first_failure_at is None:
                t.first_failure_at = c.result.started_at or now
            t.gone = t.gone or c.result.outcome == "gone"
    rows = (
        await session.execute(
            text(
                "SELECT id, tenant_id, kind, enabled, breaker_state, breaker_open_until, "
                "breaker_trips, consecutive_failures, failing_since FROM subscribers "
                "WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
            ),
            {"ids": sorted(tallies)},
        )
    ).all()
    for s in rows:
        t = tallies[s.id]
        tracked = s.kind in breaker_kinds
        changes: dict[str, Any] = {}
        if t.trailing_failures == 0:
            changes.update(
                consecutive_failures=0,
                failing_since=None,
                breaker_state="closed",
                breaker_open_until=None,
                breaker_trips=0,
                last_success_at=now,
            )
            was_failing = s.consecutive_failures > 0 or s.failing_since is not None
            if tracked and was_failing and s.tenant_id is not None:
                await publish(
                    session,
                    DeliveryRecovered(
                        subscriber_id=s.id,
                        subscriber_kind=s.kind,
                        delivery_id=t.last_success_delivery or uuid.uuid4(),
                        failing_since=s.failing_since,
                        consecutive_failures=s.consecutive_failures,
                    ),
                    tenant_id=s.tenant_id,
                    aggregate_id=s.id,
                )
        else:
            consecutive = (
                t.trailing_failures if t.successes else s.consecutive_failures + t.failures
            )
            failing_since = (t.first_failure_at if t.successes else s.failing_since) or (
                t.first_failure_at
            )
            changes.update(
                consecutive_failures=consecutive, failing_since=failing_since, last_failure_at=now
            )
            if t.successes:
                changes["last_success_at"] = now
            if tracked and consecutive >= settings.breaker_failure_threshold:
                probing = s.breaker_state == "open" and (
                    s.breaker_open_until is None or s.breaker_open_until <= now
                )
                if s.breaker_state == "closed" or probing:
                    trips = s.breaker_trips + 1
                    cooldown = min(
                        settings.breaker_cooldown_seconds * 2 ** (trips - 1),
                        settings.breaker_max_cooldown_seconds,
                    )
                    changes.update(
                        breaker_state="open",
                        breaker_trips=trips,
                        breaker_open_until=now + timedelta(seconds=cooldown),
                    )
                    metrics.BREAKER_TRIPS.inc()
            reason = None
            if tracked and t.gone:
                reason = "gone"
            elif (
                tracked
                and failing_since is not None
                and now - failing_since
                >= timedelta(seconds=settings.endpoint_disable_after_seconds)
            ):
                reason = "failing"
            if reason and s.enabled:
                changes.update(enabled=False, disabled_reason=reason, disabled_at=now)
                if s.tenant_id is not None:
                    await publish(
                        session,
                        EndpointDisabled(
                            subscriber_id=s.id, reason=reason, failing_since=failing_since
                        ),
                        tenant_id=s.tenant_id,
                        aggregate_id=s.id,
                    )
        assignments = ", ".join(f"{k} = :{k}" for k in changes)
        await session.execute(
            text(f"UPDATE subscribers SET {assignments}, updated_at = now() WHERE id = :id"),  # noqa: S608
            {**changes, "id": s.id},
        )


def failure_from_exception(exc: BaseException) -> AttemptResult:
    detail = "".join(traceback.format_exception(exc))
    return AttemptResult(
        outcome="failure", error=f"{type(exc).__name__}: {exc}\n{_short(detail, 4000)}"
    )
