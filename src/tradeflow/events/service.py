"""The events context's use cases, for its endpoints and CLI and for other contexts
(the webhooks context manages its endpoints' subscriber rows through these)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.errors import Conflict, NotFound, UnprocessableEntity
from tradeflow.events.models import Delivery, Subscriber
from tradeflow.events.repository import DeliveryFilter, EventsRepository, announce_work
from tradeflow.kit.time import utcnow

MAX_REDRIVE = 100_000


class DeliveryNotFound(NotFound):
    slug, title = "delivery-not-found", "Delivery not found"


class SubscriberNotFound(NotFound):
    slug, title = "subscriber-not-found", "Subscriber not found"


class EventNotFound(NotFound):
    slug, title = "event-not-found", "Event not found"


class SubscriberDisabled(Conflict):
    slug, title = "subscriber-disabled", "Subscriber is disabled"


class InvalidRetrySchedule(UnprocessableEntity):
    slug, title = "invalid-retry-schedule", "Invalid retry schedule"


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    """A subscriber's delivery state, as other contexts and the API see it."""

    id: uuid.UUID
    kind: str
    name: str
    event_types: list[str] | None
    enabled: bool
    paused: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    max_in_flight: int | None
    breaker_state: str  # closed, open or half_open
    breaker_open_until: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, s: Subscriber) -> SubscriberInfo:
        state = s.breaker_state
        if (
            state == "open"
            and s.breaker_open_until is not None
            and s.breaker_open_until <= utcnow()
        ):
            state = "half_open"
        return cls(
            id=s.id,
            kind=s.kind,
            name=s.name,
            event_types=list(s.event_types) if s.event_types else None,
            enabled=s.enabled,
            paused=s.paused,
            disabled_reason=s.disabled_reason,
            disabled_at=s.disabled_at,
            max_in_flight=s.max_in_flight,
            breaker_state=state,
            breaker_open_until=s.breaker_open_until,
            consecutive_failures=s.consecutive_failures,
            failing_since=s.failing_since,
            last_success_at=s.last_success_at,
            last_failure_at=s.last_failure_at,
            created_at=s.created_at,
        )


@dataclass(frozen=True, slots=True)
class RecoverResult:
    redriven: int
    created: int


async def create_subscriber(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    kind: str,
    name: str,
    event_types: Sequence[str] | None,
    subscriber_id: uuid.UUID | None = None,
    max_in_flight: int | None = None,
) -> SubscriberInfo:
    repo = EventsRepository(session, tenant_id)
    created = await repo.add_subscriber(
        Subscriber(
            id=subscriber_id or uuid.uuid4(),
            kind=kind,
            name=name,
            event_types=list(event_types) if event_types else None,
            max_in_flight=max_in_flight,
            enabled=True,
            paused=False,
            breaker_state="closed",
            consecutive_failures=0,
            breaker_trips=0,
        )
    )
    await session.refresh(created)
    return SubscriberInfo.of(created)


async def subscriber_info(
    session: AsyncSession, tenant_id: uuid.UUID, subscriber_id: uuid.UUID
) -> SubscriberInfo:
    return SubscriberInfo.of(await get_subscriber(session, tenant_id, subscriber_id))


async def get_subscriber(
    session: AsyncSession, tenant_id: uuid.UUID, subscriber_id: uuid.UUID, *, lock: bool = False
) -> Subscriber:
    found = await EventsRepository(session, tenant_id).get_subscriber(subscriber_id, lock=lock)
    if found is None:
        raise SubscriberNotFound(f"No subscriber {subscriber_id}.")
    return found


async def subscribers(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SubscriberInfo]:
    found = await EventsRepository(session, tenant_id).subscribers(ids)
    return {k: SubscriberInfo.of(v) for k, v in found.items()}


async def update_subscriber(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    subscriber_id: uuid.UUID,
    *,
    name: str | None = None,
    event_types: Sequence[str] | None = None,
    clear_event_types: bool = False,
    enabled: bool | None = None,
    max_in_flight: int | None = None,
) -> SubscriberInfo:
    sub = await get_subscriber(session, tenant_id, subscriber_id, lock=True)
    if name is not None:
        sub.name = name
    if clear_event_types:
        sub.event_types = None
    elif event_types is not None:
        sub.event_types = list(event_types)
    if max_in_flight is not None:
        sub.max_in_flight = max_in_flight
    if enabled is True and not sub.enabled:
        # Re-enabling starts afresh: a closed breaker and no failure streak.
        sub.enabled = True
        sub.disabled_reason = None
        sub.disabled_at = None
        reset_breaker(sub)
        await announce_work(session, claim=True)
    elif enabled is False and sub.enabled:
        sub.enabled = False
        sub.disabled_reason = "manual"
        sub.disabled_at = utcnow()
    await session.flush()
    await session.refresh(sub)
    return SubscriberInfo.of(sub)


def reset_breaker(sub: Subscriber) -> None:
    sub.breaker_state = "closed"
    sub.breaker_open_until = None
    sub.breaker_trips = 0
    sub.consecutive_failures = 0
    sub.failing_since = None


async def set_paused(
    session: AsyncSession, tenant_id: uuid.UUID, subscriber_id: uuid.UUID, *, paused: bool
) -> SubscriberInfo:
    """Pause holds deliveries (they are still created, and wait); resume releases them."""
    sub = await get_subscriber(session, tenant_id, subscriber_id, lock=True)
    if sub.paused and not paused:
        await announce_work(session, claim=True)  # what it held is claimable on commit
    sub.paused = paused
    await session.flush()
    return SubscriberInfo.of(sub)


async def delete_subscriber(
    session: AsyncSession, tenant_id: uuid.UUID, subscriber_id: uuid.UUID
) -> None:
    repo = EventsRepository(session, tenant_id)
    sub = await get_subscriber(session, tenant_id, subscriber_id)
    await repo.delete_subscriber(sub)


async def redeliver(
    session: AsyncSession, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> Delivery:
    """Send one delivery again now, with the same `webhook-id` (receivers deduplicate on it)."""
    repo = EventsRepository(session, tenant_id)
    if await repo.get_delivery(delivery_id) is None:
        raise DeliveryNotFound(f"No delivery {delivery_id}.")
    await repo.reschedule(
        DeliveryFilter(),
        statuses=("pending", "delivered", "dead", "cancelled"),
        reset_attempts=True,
        ids=[delivery_id],
    )
    found = await repo.get_delivery(delivery_id)
    assert found is not None
    await session.refresh(found)
    return found


async def redrive_dead_letters(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    subscriber_id: uuid.UUID | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    limit: int = MAX_REDRIVE,
) -> list[uuid.UUID]:
    """Give dead letters a fresh retry budget and make them due now."""
    repo = EventsRepository(session, tenant_id)
    return await repo.reschedule(
        DeliveryFilter(subscriber_id=subscriber_id, event_type=event_type, since=since),
        statuses=("dead",),
        reset_attempts=True,
        limit=limit,
    )


async def recover(
    session: AsyncSession, tenant_id: uuid.UUID, subscriber_id: uuid.UUID, *, since: datetime
) -> RecoverResult:
    """Resend everything a subscriber failed to get since `since`.

    Dead letters since then are redriven, pending retries are made due now,
    and events that matched while it was disabled (so got no delivery) get one.
    """
    sub = await get_subscriber(session, tenant_id, subscriber_id, lock=True)
    repo = EventsRepository(session, tenant_id)
    redriven = await repo.reschedule(
        DeliveryFilter(subscriber_id=subscriber_id, since=since),
        statuses=("dead", "pending"),
        reset_attempts=True,
        limit=MAX_REDRIVE,
    )
    created = await repo.create_missing_deliveries(sub, since=since)
    return RecoverResult(redriven=len(redriven), created=created)


def validate_schedule(schedule: Sequence[int]) -> list[int]:
    if len(schedule) > 30:
        raise InvalidRetrySchedule("At most 30 retries.")
    if any(s < 0 or s > 7 * 24 * 3600 for s in schedule):
        raise InvalidRetrySchedule("Each wait must be between 0 and 604800 seconds (7 days).")
    return list(schedule)


async def set_retry_schedule(
    session: AsyncSession, tenant_id: uuid.UUID, schedule: Sequence[int] | None
) -> None:
    repo = EventsRepository(session, tenant_id)
    if schedule is None:
        await repo.delete_policy()
    else:
        await repo.set_policy(validate_schedule(schedule))


async def retry_schedule(session: AsyncSession, tenant_id: uuid.UUID) -> list[int] | None:
    policy = await EventsRepository(session, tenant_id).get_policy()
    return list(policy.retry_schedule) if policy else None
