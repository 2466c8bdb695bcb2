"""`/v1/events`, `/v1/deliveries`, `/v1/dead-letters`, `/v1/scheduled-jobs` and the policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from tradeflow.events import service
from tradeflow.events.auth import DeliveriesRead, DeliveriesWrite, EventsRead
from tradeflow.events.catalogue import EVENT_TYPES, load_event_modules, published_schema
from tradeflow.events.models import Delivery
from tradeflow.events.repository import DeliveryFilter, EventsRepository, list_jobs
from tradeflow.events.schemas import (
    AttemptOut,
    DeliveryDetailOut,
    DeliveryOut,
    EventOut,
    EventTypeOut,
    JobOut,
    RedriveIn,
    RedriveOut,
    RetryPolicyIn,
    RetryPolicyOut,
)
from tradeflow.identity.auth import TenantSession
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.kit.time import utcnow

router = APIRouter()

Status = Annotated[
    str | None, Query(pattern="^(pending|delivered|dead|cancelled)$", description="Filter.")
]


def delivery_out(d: Delivery) -> DeliveryOut:
    now = utcnow()
    return DeliveryOut.model_validate(
        {
            **{k: getattr(d, k) for k in DeliveryOut.model_fields if k != "in_flight"},
            "in_flight": d.leased_until is not None and d.leased_until > now,
        }
    )


@router.get(
    "/event-types",
    response_model=list[EventTypeOut],
    tags=["events"],
    responses=problems(401, 403),
)
async def event_types(principal: EventsRead) -> list[EventTypeOut]:
    """The event catalogue: every type, its version, aggregate and JSON Schema."""
    load_event_modules()
    return [
        EventTypeOut(
            type=name,
            version=version,
            aggregate=cls.AGGREGATE,
            description=cls.DESCRIPTION,
            payload_schema=published_schema(cls),
        )
        for (name, version), cls in sorted(EVENT_TYPES.items())
    ]


@router.get(
    "/events", response_model=Page[EventOut], tags=["events"], responses=problems(400, 401, 403)
)
async def list_events(
    principal: EventsRead,
    session: TenantSession,
    page: PageParams,
    type: Annotated[str | None, Query(max_length=100, description="Exact event type.")] = None,
    aggregate_type: Annotated[str | None, Query(max_length=60)] = None,
    aggregate_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="occurred_at ≥ since")] = None,
    until: Annotated[datetime | None, Query(description="occurred_at < until")] = None,
) -> Page[EventOut]:
    """The tenant's events, newest first."""
    rows, cursor = await EventsRepository(session, principal.tenant_id).list_events(
        page,
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        since=since,
        until=until,
    )
    return Page(items=[EventOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/events/{event_id}",
    response_model=EventOut,
    tags=["events"],
    responses=problems(401, 403, 404),
)
async def get_event(event_id: uuid.UUID, principal: EventsRead, session: TenantSession) -> EventOut:
    """One event with its payload."""
    row = await EventsRepository(session, principal.tenant_id).get_event(event_id)
    if row is None:
        raise service.EventNotFound(f"No event {event_id}.")
    return EventOut.model_validate(row)


@router.get(
    "/deliveries",
    response_model=Page[DeliveryOut],
    tags=["deliveries"],
    responses=problems(400, 401, 403),
)
async def list_deliveries(
    principal: DeliveriesRead,
    session: TenantSession,
    page: PageParams,
    endpoint_id: Annotated[
        uuid.UUID | None, Query(description="A webhook endpoint (or handler).")
    ] = None,
    status: Status = None,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
    event_id: uuid.UUID | None = None,
    status_code: Annotated[
        int | None, Query(ge=100, le=599, description="Last response code.")
    ] = None,
    since: Annotated[datetime | None, Query(description="created_at ≥ since")] = None,
    until: Annotated[datetime | None, Query(description="created_at < until")] = None,
) -> Page[DeliveryOut]:
    """Deliveries (one per event and subscriber), newest first."""
    rows, cursor = await EventsRepository(session, principal.tenant_id).list_deliveries(
        page,
        DeliveryFilter(
            subscriber_id=endpoint_id,
            status=status,
            event_type=event_type,
            event_id=event_id,
            since=since,
            until=until,
            status_code=status_code,
        ),
    )
    return Page(items=[delivery_out(r) for r in rows], next_cursor=cursor)


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryDetailOut,
    tags=["deliveries"],
    responses=problems(401, 403, 404),
)
async def get_delivery(
    delivery_id: uuid.UUID, principal: DeliveriesRead, session: TenantSession
) -> DeliveryDetailOut:
    """One delivery with every attempt (time, response code, latency, error)."""
    repo = EventsRepository(session, principal.tenant_id)
    row = await repo.get_delivery(delivery_id)
    if row is None:
        raise service.DeliveryNotFound(f"No delivery {delivery_id}.")
    attempts = [AttemptOut.model_validate(a) for a in await repo.attempts(delivery_id)]
    return DeliveryDetailOut(**delivery_out(row).model_dump(), attempt_log=attempts)


@router.get(
    "/delivery-attempts",
    response_model=Page[AttemptOut],
    tags=["deliveries"],
    responses=problems(400, 401, 403),
)
async def list_attempts(
    principal: DeliveriesRead,
    session: TenantSession,
    page: PageParams,
    delivery_id: uuid.UUID | None = None,
    outcome: Annotated[
        str | None, Query(pattern="^(success|failure|timeout|connect_error|blocked|gone)$")
    ] = None,
    status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
    min_duration_ms: Annotated[float | None, Query(ge=0, description="Slow attempts only.")] = None,
) -> Page[AttemptOut]:
    """Delivery attempts, newest first, filterable by outcome, response code and latency."""
    rows, cursor = await EventsRepository(session, principal.tenant_id).list_attempts(
        page,
        delivery_id=delivery_id,
        outcome=outcome,
        status_code=status_code,
        min_duration_ms=min_duration_ms,
    )
    return Page(items=[AttemptOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=202,
    tags=["deliveries"],
    responses=problems(401, 403, 404),
)
async def redeliver(
    delivery_id: uuid.UUID, principal: DeliveriesWrite, session: TenantSession
) -> DeliveryOut:
    """Send this delivery again now, with the same `webhook-id`.

    A finished delivery (delivered or dead) gets a fresh retry budget; one that
    is in flight is not sent a second time concurrently — it is sent again once
    the current attempt ends.
    """
    row = await service.redeliver(session, principal.tenant_id, delivery_id)
    return delivery_out(row)


@router.get(
    "/dead-letters",
    response_model=Page[DeliveryOut],
    tags=["deliveries"],
    responses=problems(400, 401, 403),
)
async def dead_letters(
    principal: DeliveriesRead,
    session: TenantSession,
    page: PageParams,
    endpoint_id: uuid.UUID | None = None,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[DeliveryOut]:
    """Deliveries that used their whole retry budget."""
    rows, cursor = await EventsRepository(session, principal.tenant_id).list_deliveries(
        page, DeliveryFilter(subscriber_id=endpoint_id, status="dead", event_type=event_type)
    )
    return Page(items=[delivery_out(r) for r in rows], next_cursor=cursor)


@router.post(
    "/dead-letters/redrive",
    response_model=RedriveOut,
    status_code=202,
    tags=["deliveries"],
    responses=problems(401, 403, 422),
)
async def redrive(
    body: RedriveIn, principal: DeliveriesWrite, session: TenantSession
) -> RedriveOut:
    """Retry matching dead letters now, each with a fresh retry budget."""
    ids = await service.redrive_dead_letters(
        session,
        principal.tenant_id,
        subscriber_id=body.endpoint_id,
        event_type=body.event_type,
        since=body.since,
    )
    return RedriveOut(redriven=len(ids), delivery_ids=ids[:1000])


@router.get(
    "/scheduled-jobs", response_model=list[JobOut], tags=["scheduler"], responses=problems(401, 403)
)
async def scheduled_jobs(principal: EventsRead, session: TenantSession) -> list[JobOut]:
    """Periodic jobs: cron, next run, last run, its status and error."""
    now = utcnow()
    return [
        JobOut.model_validate(
            {
                **{k: getattr(j, k) for k in JobOut.model_fields if k != "running"},
                "running": j.running_until is not None and j.running_until > now,
            }
        )
        for j in await list_jobs(session)
    ]


def _policy_out(request: Request, schedule: list[int] | None) -> RetryPolicyOut:
    settings = request.app.state.settings
    effective = schedule if schedule is not None else list(settings.webhooks_retry_schedule)
    return RetryPolicyOut(
        retry_schedule=effective,
        custom=schedule is not None,
        attempts=len(effective) + 1,
        jitter=settings.delivery_retry_jitter,
    )


@router.get(
    "/delivery-policy",
    response_model=RetryPolicyOut,
    tags=["deliveries"],
    responses=problems(401, 403),
)
async def get_policy(
    request: Request, principal: DeliveriesRead, session: TenantSession
) -> RetryPolicyOut:
    """The webhook retry schedule in effect for this tenant."""
    return _policy_out(request, await service.retry_schedule(session, principal.tenant_id))


@router.put(
    "/delivery-policy",
    response_model=RetryPolicyOut,
    tags=["deliveries"],
    responses=problems(401, 403, 422),
)
async def put_policy(
    body: RetryPolicyIn, request: Request, principal: DeliveriesWrite, session: TenantSession
) -> RetryPolicyOut:
    """Set this tenant's webhook retry schedule (null restores the installation default)."""
    await service.set_retry_schedule(session, principal.tenant_id, body.retry_schedule)
    return _policy_out(request, body.retry_schedule)
