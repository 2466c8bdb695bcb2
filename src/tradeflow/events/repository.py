"""Every query of the events context that runs on behalf of a tenant (the API and CLI).

Tenant scoping happens here, once: every statement filters on the tenant the
repository was built for (and row-level security repeats the filter).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.events.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryPolicy,
    DeliveryPromotion,
    EventRow,
    ScheduledJobRow,
    Subscriber,
)
from tradeflow.kit.pagination import PageRequest, paginate


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    subscriber_id: uuid.UUID | None = None
    status: str | None = None
    event_type: str | None = None
    event_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    status_code: int | None = None


async def announce_work(session: AsyncSession, *, claim: bool) -> None:
    """Wake the workers when this transaction commits: for a dispatch (promotions queued)
    or, with `claim`, for a claim too (deliveries made claimable outside a dispatch, e.g.
    an endpoint resumed or re-enabled)."""
    await session.execute(
        text("SELECT pg_notify('tradeflow_work', :p)"), {"p": "c" if claim else "e"}
    )


class EventsRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    # -- events ---------------------------------------------------------------------------------
    async def list_events(
        self,
        page: PageRequest,
        *,
        type: str | None = None,
        aggregate_type: str | None = None,
        aggregate_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[EventRow], str | None]:
        stmt = select(EventRow).where(EventRow.tenant_id == self.tenant_id)
        if type:
            stmt = stmt.where(EventRow.type == type)
        if aggregate_type:
            stmt = stmt.where(EventRow.aggregate_type == aggregate_type)
        if aggregate_id:
            stmt = stmt.where(EventRow.aggregate_id == aggregate_id)
        if since:
            stmt = stmt.where(EventRow.occurred_at >= since)
        if until:
            stmt = stmt.where(EventRow.occurred_at < until)
        return await paginate(self.session, stmt, page, order_by=[EventRow.id])

    async def get_event(self, event_id: uuid.UUID) -> EventRow | None:
        return (
            await self.session.execute(
                select(EventRow).where(
                    EventRow.tenant_id == self.tenant_id, EventRow.id == event_id
                )
            )
        ).scalar_one_or_none()

    # -- subscribers ----------------------------------------------------------------------------
    async def add_subscriber(self, subscriber: Subscriber) -> Subscriber:
        subscriber.tenant_id = self.tenant_id
        self.session.add(subscriber)
        await self.session.flush()
        return subscriber

    async def get_subscriber(
        self, subscriber_id: uuid.UUID, *, lock: bool = False
    ) -> Subscriber | None:
        stmt = select(Subscriber).where(
            Subscriber.tenant_id == self.tenant_id, Subscriber.id == subscriber_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def subscribers(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Subscriber]:
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Subscriber).where(Subscriber.tenant_id == self.tenant_id, Subscriber.id.in_(ids))
        )
        return {s.id: s for s in rows.scalars()}

    async def delete_subscriber(self, subscriber: Subscriber) -> None:
        await self.session.delete(subscriber)
        await self.session.flush()

    # -- deliveries -----------------------------------------------------------------------------
    def _deliveries(self, f: DeliveryFilter) -> Select[Any]:
        stmt = select(Delivery).where(Delivery.tenant_id == self.tenant_id)
        if f.subscriber_id:
            stmt = stmt.where(Delivery.subscriber_id == f.subscriber_id)
        if f.status:
            stmt = stmt.where(Delivery.status == f.status)
        if f.event_type:
            stmt = stmt.where(Delivery.event_type == f.event_type)
        if f.event_id:
            stmt = stmt.where(Delivery.event_id == f.event_id)
        if f.since:
            stmt = stmt.where(Delivery.created_at >= f.since)
        if f.until:
            stmt = stmt.where(Delivery.created_at < f.until)
        if f.status_code is not None:
            stmt = stmt.where(Delivery.last_status_code == f.status_code)
        return stmt

    async def list_deliveries(
        self, page: PageRequest, f: DeliveryFilter
    ) -> tuple[list[Delivery], str | None]:
        return await paginate(self.session, self._deliveries(f), page, order_by=[Delivery.id])

    async def get_delivery(self, delivery_id: uuid.UUID) -> Delivery | None:
        return (
            await self.session.execute(
                select(Delivery).where(
                    Delivery.tenant_id == self.tenant_id, Delivery.id == delivery_id
                )
            )
        ).scalar_one_or_none()

    async def attempts(self, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
        rows = await self.session.execute(
            select(DeliveryAttempt)
            .where(
                DeliveryAttempt.tenant_id == self.tenant_id,
                DeliveryAttempt.delivery_id == delivery_id,
            )
            .order_by(DeliveryAttempt.attempt, DeliveryAttempt.id)
        )
        return list(rows.scalars())

    async def list_attempts(
        self,
        page: PageRequest,
        *,
        delivery_id: uuid.UUID | None = None,
        outcome: str | None = None,
        status_code: int | None = None,
        min_duration_ms: float | None = None,
    ) -> tuple[list[DeliveryAttempt], str | None]:
        stmt = select(DeliveryAttempt).where(DeliveryAttempt.tenant_id == self.tenant_id)
        if delivery_id:
            stmt = stmt.where(DeliveryAttempt.delivery_id == delivery_id)
        if outcome:
            stmt = stmt.where(DeliveryAttempt.outcome == outcome)
        if status_code is not None:
            stmt = stmt.where(DeliveryAttempt.status_code == status_code)
        if min_duration_ms is not None:
            stmt = stmt.where(DeliveryAttempt.duration_ms >= min_duration_ms)
        return await paginate(self.session, stmt, page, order_by=[DeliveryAttempt.id])

    async def reschedule(
        self,
        f: DeliveryFilter,
        *,
        statuses: Sequence[str],
        reset_attempts: bool,
        limit: int | None = None,
        ids: Sequence[uuid.UUID] | None = None,
    ) -> list[uuid.UUID]:
        """Make matching deliveries due now (a redrive or redelivery); returns their ids.

        A delivery that is in flight keeps its lease: it is not claimed again
        until that attempt completes or its lease expires, so a redelivery
        never puts one message in flight twice.
        """
        ids_stmt = (
            self._deliveries(f)
            .where(Delivery.status.in_(statuses))
            .with_only_columns(Delivery.id)
            .order_by(Delivery.id)
        )
        if ids is not None:
            ids_stmt = ids_stmt.where(Delivery.id.in_(ids))
        if limit is not None:
            ids_stmt = ids_stmt.limit(limit)
        values: dict[str, Any] = {
            "status": "pending",
            "next_attempt_at": func.now(),
            "dead_at": None,
            # Re-queued deliveries rejoin their aggregate's order: the dispatcher marks
            # the earliest pending one of each (subscriber, aggregate) ready.
            "ready": False,
        }
        if reset_attempts:
            # A finished delivery sent again gets a fresh budget; a pending one keeps its count.
            values["attempts"] = case(
                (Delivery.status.in_(("dead", "delivered", "cancelled")), 0),
                else_=Delivery.attempts,
            )
        result = await self.session.execute(
            update(Delivery)
            .where(
                Delivery.tenant_id == self.tenant_id,
                # Lock the rows in id order, as the worker's completion does, so a bulk
                # reschedule and a completing batch never deadlock on each other.
                Delivery.id.in_(ids_stmt.with_for_update().scalar_subquery()),
            )
            .values(**values)
            .returning(Delivery.id, Delivery.subscriber_id, Delivery.aggregate)
        )
        rows = result.all()
        await self._queue_promotions({(r.subscriber_id, r.aggregate) for r in rows})
        return [r.id for r in rows]

    async def _queue_promotions(self, pairs: set[tuple[uuid.UUID, str]]) -> None:
        if pairs:
            await self.session.execute(
                insert(DeliveryPromotion),
                [
                    {"tenant_id": self.tenant_id, "subscriber_id": s, "aggregate": a}
                    for s, a in sorted(pairs)
                ],
            )
            # The next dispatch promotes them: wake the workers now rather than at their
            # next poll.
            await announce_work(self.session, claim=False)

    async def create_missing_deliveries(self, subscriber: Subscriber, *, since: datetime) -> int:
        """Deliveries for events since `since` that match `subscriber` but never got one
        (it was disabled, or created later than the event was dispatched)."""
        result = await self.session.execute(
            text(
                """
                WITH created AS (
                INSERT INTO deliveries (tenant_id, event_id, subscriber_id, event_type, aggregate,
                                        sequence)
                SELECT e.tenant_id, e.id, :sid, e.type, e.aggregate_type || ':' || e.aggregate_id,
                       e.sequence
                FROM events e
                WHERE e.tenant_id = :tenant AND e.occurred_at >= :since
                  AND e.occurred_at >= :created AND e.dispatched_at IS NOT NULL
                  AND e.target_subscriber_id IS NULL
                  AND (CAST(:types AS text[]) IS NULL OR EXISTS (
                    SELECT 1 FROM unnest(CAST(:types AS text[])) AS p(pattern)
                    WHERE p.pattern = e.type OR p.pattern = '*'
                       OR (right(p.pattern, 2) = '.*'
                           AND starts_with(e.type, left(p.pattern, -1)))))
                ON CONFLICT (event_id, subscriber_id) DO NOTHING
                RETURNING tenant_id, subscriber_id, aggregate
                ), queued AS (
                  INSERT INTO delivery_promotions (tenant_id, subscriber_id, aggregate)
                  SELECT DISTINCT tenant_id, subscriber_id, aggregate FROM created
                )
                SELECT count(*) FROM created
                """
            ),
            {
                "sid": subscriber.id,
                "tenant": self.tenant_id,
                "since": since,
                "created": subscriber.created_at,
                "types": subscriber.event_types,
            },
        )
        return int(result.scalar_one())

    async def delivery_counts(
        self, subscriber_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, int]]:
        if not subscriber_ids:
            return {}
        rows = await self.session.execute(
            select(Delivery.subscriber_id, Delivery.status, func.count())
            .where(Delivery.tenant_id == self.tenant_id, Delivery.subscriber_id.in_(subscriber_ids))
            .group_by(Delivery.subscriber_id, Delivery.status)
        )
        out: dict[uuid.UUID, dict[str, int]] = {}
        for sid, status, n in rows.all():
            out.setdefault(sid, {})[status] = n
        return out

    # -- policy and jobs ------------------------------------------------------------------------
    async def get_policy(self) -> DeliveryPolicy | None:
        return await self.session.get(DeliveryPolicy, self.tenant_id)

    async def set_policy(self, schedule: list[int]) -> None:
        existing = await self.get_policy()
        if existing is None:
            await self.session.execute(
                insert(DeliveryPolicy).values(tenant_id=self.tenant_id, retry_schedule=schedule)
            )
        else:
            existing.retry_schedule = schedule
            existing.updated_at = func.now()
        await self.session.flush()

    async def delete_policy(self) -> None:
        existing = await self.get_policy()
        if existing is not None:
            await self.session.delete(existing)
            await self.session.flush()


async def list_jobs(session: AsyncSession) -> list[ScheduledJobRow]:
    """Scheduled jobs are cluster-wide, not tenant data."""
    rows = await session.execute(select(ScheduledJobRow).order_by(ScheduledJobRow.name))
    return list(rows.scalars())


# -- cross-tenant views for operators (CLI, system sessions only) ----------------------------------


async def tenant_of_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> uuid.UUID | None:
    return (
        await session.execute(select(Delivery.tenant_id).where(Delivery.id == delivery_id))
    ).scalar_one_or_none()


async def tenant_of_subscriber(session: AsyncSession, subscriber_id: uuid.UUID) -> uuid.UUID | None:
    return (
        await session.execute(select(Subscriber.tenant_id).where(Subscriber.id == subscriber_id))
    ).scalar_one_or_none()


async def recent_deliveries(
    session: AsyncSession, f: DeliveryFilter, *, tenant_id: uuid.UUID | None, limit: int
) -> list[tuple[Delivery, str, str]]:
    """Newest deliveries with their subscriber's kind and name, across tenants unless given."""
    stmt = (
        select(Delivery, Subscriber.kind, Subscriber.name)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if tenant_id is not None:
        stmt = stmt.where(Delivery.tenant_id == tenant_id)
    for column, value in (
        (Delivery.subscriber_id, f.subscriber_id),
        (Delivery.status, f.status),
        (Delivery.event_type, f.event_type),
        (Delivery.event_id, f.event_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if f.since is not None:
        stmt = stmt.where(Delivery.created_at >= f.since)
    rows = await session.execute(stmt)
    return [(d, kind, name) for d, kind, name in rows.all()]


async def recent_events(
    session: AsyncSession, *, tenant_id: uuid.UUID | None, type: str | None, limit: int
) -> list[EventRow]:
    stmt = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(EventRow.tenant_id == tenant_id)
    if type:
        stmt = stmt.where(EventRow.type == type)
    return list((await session.execute(stmt)).scalars())


async def all_subscribers(
    session: AsyncSession, *, tenant_id: uuid.UUID | None
) -> list[tuple[Subscriber, dict[str, int]]]:
    stmt = select(Subscriber).order_by(Subscriber.kind, Subscriber.name)
    if tenant_id is not None:
        stmt = stmt.where(Subscriber.tenant_id == tenant_id)
    subs = list((await session.execute(stmt)).scalars())
    counts: dict[uuid.UUID, dict[str, int]] = {}
    if subs:
        rows = await session.execute(
            select(Delivery.subscriber_id, Delivery.status, func.count())
            .where(Delivery.subscriber_id.in_([s.id for s in subs]))
            .group_by(Delivery.subscriber_id, Delivery.status)
        )
        for sid, status, n in rows.all():
            counts.setdefault(sid, {})[status] = n
    return [(s, counts.get(s.id, {})) for s in subs]


async def dead_letter_ids(
    session: AsyncSession, f: DeliveryFilter, *, tenant_id: uuid.UUID | None
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(delivery id, tenant id) of matching dead letters, oldest first."""
    stmt = select(Delivery.id, Delivery.tenant_id).where(Delivery.status == "dead")
    if tenant_id is not None:
        stmt = stmt.where(Delivery.tenant_id == tenant_id)
    if f.subscriber_id is not None:
        stmt = stmt.where(Delivery.subscriber_id == f.subscriber_id)
    if f.event_type is not None:
        stmt = stmt.where(Delivery.event_type == f.event_type)
    if f.since is not None:
        stmt = stmt.where(Delivery.created_at >= f.since)
    rows = await session.execute(stmt.order_by(Delivery.id))
    return [(r[0], r[1]) for r in rows.all()]


async def request_job_run(session: AsyncSession, name: str) -> bool:
    """Make a scheduled job due now (it runs at the next scheduler pass, once)."""
    result = await session.execute(
        update(ScheduledJobRow)
        .where(ScheduledJobRow.name == name)
        .values(next_run_at=func.now())
        .returning(ScheduledJobRow.name)
    )
    return result.first() is not None
