"""`/v1/webhook-endpoints`: register, inspect, test, rotate, pause, recover."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tradeflow.events import service as events
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.webhooks import service
from tradeflow.webhooks.schemas import (
    EndpointCreatedOut,
    EndpointCreateIn,
    EndpointOut,
    EndpointUpdateIn,
    RecoverIn,
    RecoverOut,
    RotateIn,
    SecretOut,
    TestSentOut,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"])

WebhooksRead = Annotated[Principal, require_scopes("webhooks:read")]
WebhooksWrite = Annotated[Principal, require_scopes("webhooks:write")]


@router.post(
    "", status_code=201, response_model=EndpointCreatedOut, responses=problems(401, 403, 409, 422)
)
async def create_endpoint(
    body: EndpointCreateIn, request: Request, principal: WebhooksWrite, session: TenantSession
) -> JSONResponse:
    """Register a webhook endpoint. The response carries its signing secret, shown this once.

    Accepts `Idempotency-Key`; a replay returns the endpoint without the secret
    (rotate it if it was lost). Private and loopback targets are refused unless
    the operator allows them (`TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE`).
    """
    idem = await claim(
        request,
        session,
        tenant_id=principal.tenant_id,
        caller=f"{principal.kind}:{principal.id}",
        required=False,
    )
    state = request.app.state
    view, secret = await service.create_endpoint(
        session,
        principal.tenant_id,
        settings=state.settings,
        keyring=state.keyring,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        max_in_flight=body.max_in_flight,
    )
    location = f"/v1/webhook-endpoints/{view.endpoint.id}"
    out = EndpointCreatedOut(**EndpointOut.of(view).model_dump(), secret=None)
    # The stored replay never holds the secret: it would sit in plain text for a day.
    await idem.save(201, out.model_dump(mode="json"), location=location)
    out.secret = secret
    return JSONResponse(
        out.model_dump(mode="json"), status_code=201, headers={"Location": location}
    )


@router.get("", response_model=Page[EndpointOut], responses=problems(400, 401, 403))
async def list_endpoints(
    principal: WebhooksRead, session: TenantSession, page: PageParams
) -> Page[EndpointOut]:
    """The tenant's webhook endpoints with their delivery health, newest first."""
    views, cursor = await service.list_endpoints(session, principal.tenant_id, page)
    return Page(items=[EndpointOut.of(v) for v in views], next_cursor=cursor)


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=problems(401, 403, 404))
async def get_endpoint(
    endpoint_id: uuid.UUID, principal: WebhooksRead, session: TenantSession
) -> EndpointOut:
    """One endpoint: filter, enabled/paused, circuit breaker and failure streak."""
    return EndpointOut.of(await service.get_endpoint(session, principal.tenant_id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut, responses=problems(401, 403, 404, 422))
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: EndpointUpdateIn,
    request: Request,
    principal: WebhooksWrite,
    session: TenantSession,
) -> EndpointOut:
    """Change URL, description, event types, cap; disable or re-enable the endpoint."""
    fields = body.model_fields_set
    view = await service.update_endpoint(
        session,
        principal.tenant_id,
        endpoint_id,
        settings=request.app.state.settings,
        url=body.url,
        description=body.description,
        event_types=body.event_types if body.event_types else None,
        clear_event_types="event_types" in fields and not body.event_types,
        enabled=body.enabled,
        max_in_flight=body.max_in_flight,
    )
    return EndpointOut.of(view)


@router.delete("/{endpoint_id}", status_code=204, responses=problems(401, 403, 404))
async def delete_endpoint(
    endpoint_id: uuid.UUID, principal: WebhooksWrite, session: TenantSession
) -> Response:
    """Delete the endpoint with its delivery log."""
    await service.delete_endpoint(session, principal.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/test",
    status_code=202,
    response_model=TestSentOut,
    responses=problems(401, 403, 404, 409),
)
async def send_test(
    endpoint_id: uuid.UUID, principal: WebhooksWrite, session: TenantSession
) -> TestSentOut:
    """Enqueue a `webhook.test` event delivered to this endpoint only."""
    event = await service.send_test(session, principal.tenant_id, endpoint_id)
    return TestSentOut(event_id=event.id)


@router.post(
    "/{endpoint_id}/rotate-secret", response_model=SecretOut, responses=problems(401, 403, 404, 422)
)
async def rotate_secret(
    endpoint_id: uuid.UUID,
    body: RotateIn,
    request: Request,
    principal: WebhooksWrite,
    session: TenantSession,
) -> SecretOut:
    """A new signing secret (shown once). The old one keeps signing for the overlap window,
    so every message carries both signatures until receivers have switched."""
    state = request.app.state
    overlap = (
        body.overlap_seconds
        if body.overlap_seconds is not None
        else state.settings.webhooks_secret_overlap_seconds
    )
    view, secret = await service.rotate_secret(
        session, principal.tenant_id, endpoint_id, keyring=state.keyring, overlap_seconds=overlap
    )
    return SecretOut(
        id=endpoint_id,
        secret=secret,
        previous_secret_expires_at=view.endpoint.previous_secret_expires_at,
    )


@router.post("/{endpoint_id}/pause", response_model=EndpointOut, responses=problems(401, 403, 404))
async def pause(
    endpoint_id: uuid.UUID, principal: WebhooksWrite, session: TenantSession
) -> EndpointOut:
    """Hold deliveries: events keep queueing for the endpoint but nothing is sent."""
    await events.set_paused(session, principal.tenant_id, endpoint_id, paused=True)
    return EndpointOut.of(await service.get_endpoint(session, principal.tenant_id, endpoint_id))


@router.post("/{endpoint_id}/resume", response_model=EndpointOut, responses=problems(401, 403, 404))
async def resume(
    endpoint_id: uuid.UUID, principal: WebhooksWrite, session: TenantSession
) -> EndpointOut:
    """Release held deliveries, in order."""
    await events.set_paused(session, principal.tenant_id, endpoint_id, paused=False)
    return EndpointOut.of(await service.get_endpoint(session, principal.tenant_id, endpoint_id))


@router.post(
    "/{endpoint_id}/recover",
    status_code=202,
    response_model=RecoverOut,
    responses=problems(401, 403, 404, 422),
)
async def recover(
    endpoint_id: uuid.UUID, body: RecoverIn, principal: WebhooksWrite, session: TenantSession
) -> RecoverOut:
    """Resend everything this endpoint failed or missed since `since`: dead letters are
    redriven, waiting retries made due now, and events it missed while disabled get a delivery."""
    await service.get_endpoint(session, principal.tenant_id, endpoint_id)
    result = await events.recover(session, principal.tenant_id, endpoint_id, since=body.since)
    return RecoverOut(redriven=result.redriven, created=result.created)
