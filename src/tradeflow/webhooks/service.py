"""Webhook endpoint use cases. An endpoint is a `webhook_endpoints` row (URL, secrets) plus
its subscriber in the events context (filter, enabled/paused, breaker), sharing one id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.errors import NotFound, UnprocessableEntity
from tradeflow.events import Event, publish
from tradeflow.events import service as events
from tradeflow.events.catalogue import EVENT_TYPES
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow
from tradeflow.webhooks import signing
from tradeflow.webhooks.events import WebhookTest
from tradeflow.webhooks.models import WebhookEndpoint
from tradeflow.webhooks.repository import WebhooksRepository
from tradeflow.webhooks.ssrf import validate_url
from tradeflow.webhooks.transport import aad_for

KIND = "webhook"


class EndpointNotFound(NotFound):
    slug, title = "webhook-endpoint-not-found", "Webhook endpoint not found"


class UnknownEventTypes(UnprocessableEntity):
    slug, title = "unknown-event-types", "Unknown event types"


@dataclass(frozen=True, slots=True)
class EndpointView:
    endpoint: WebhookEndpoint
    subscriber: events.SubscriberInfo


def check_event_types(event_types: Sequence[str] | None) -> list[str] | None:
    """Exact types must exist; `order.*` and `*` patterns are accepted as they are."""
    if not event_types:
        return None
    known = {name for name, _ in EVENT_TYPES}
    unknown = [t for t in event_types if t != "*" and not t.endswith(".*") and t not in known]
    if unknown:
        raise UnknownEventTypes(
            f"Unknown event type(s): {', '.join(sorted(unknown))}. See GET /v1/event-types.",
            unknown=sorted(unknown),
        )
    return sorted(set(event_types))


async def create_endpoint(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    settings: Settings,
    keyring: Keyring,
    url: str,
    event_types: Sequence[str] | None = None,
    description: str = "",
    max_in_flight: int | None = None,
) -> tuple[EndpointView, str]:
    """Create an endpoint; returns it with its signing secret (shown this once)."""
    validate_url(url, allow_private=settings.webhooks_allow_private)
    types = check_event_types(event_types)
    endpoint_id = uuid7()
    subscriber = await events.create_subscriber(
        session,
        tenant_id,
        kind=KIND,
        name=description or url,
        event_types=types,
        subscriber_id=endpoint_id,
        max_in_flight=max_in_flight,
    )
    secret = signing.generate_secret()
    endpoint = await WebhooksRepository(session, tenant_id).add(
        WebhookEndpoint(
            id=endpoint_id,
            url=url,
            description=description,
            secret_ciphertext=keyring.encrypt_str(secret, aad=aad_for(endpoint_id)),
        )
    )
    return EndpointView(endpoint, subscriber), secret


async def get_endpoint(
    session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, *, lock: bool = False
) -> EndpointView:
    endpoint = await WebhooksRepository(session, tenant_id).get(endpoint_id, lock=lock)
    if endpoint is None:
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id}.")
    subscriber = await events.subscriber_info(session, tenant_id, endpoint_id)
    return EndpointView(endpoint, subscriber)


async def list_endpoints(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest
) -> tuple[list[EndpointView], str | None]:
    rows, cursor = await WebhooksRepository(session, tenant_id).page(page)
    subs = await events.subscribers(session, tenant_id, [r.id for r in rows])
    return [EndpointView(r, subs[r.id]) for r in rows if r.id in subs], cursor


async def update_endpoint(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    settings: Settings,
    url: str | None = None,
    description: str | None = None,
    event_types: Sequence[str] | None = None,
    clear_event_types: bool = False,
    enabled: bool | None = None,
    max_in_flight: int | None = None,
) -> EndpointView:
    view = await get_endpoint(session, tenant_id, endpoint_id, lock=True)
    if url is not None:
        view.endpoint.url = validate_url(url, allow_private=settings.webhooks_allow_private)
    if description is not None:
        view.endpoint.description = description
    view.endpoint.updated_at = utcnow()
    subscriber = await events.update_subscriber(
        session,
        tenant_id,
        endpoint_id,
        name=(description or view.endpoint.url) if (description is not None or url) else None,
        event_types=check_event_types(event_types) if event_types else None,
        clear_event_types=clear_event_types,
        enabled=enabled,
        max_in_flight=max_in_flight,
    )
    await session.flush()
    return EndpointView(view.endpoint, subscriber)


async def delete_endpoint(
    session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> None:
    """Delete an endpoint with its deliveries and their attempts."""
    await get_endpoint(session, tenant_id, endpoint_id)
    await events.delete_subscriber(session, tenant_id, endpoint_id)


async def rotate_secret(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    keyring: Keyring,
    overlap_seconds: int,
) -> tuple[EndpointView, str]:
    """A new signing secret; the old one keeps signing too for `overlap_seconds`."""
    view = await get_endpoint(session, tenant_id, endpoint_id, lock=True)
    secret = signing.generate_secret()
    ep = view.endpoint
    if overlap_seconds > 0:
        ep.previous_secret_ciphertext = ep.secret_ciphertext
        ep.previous_secret_expires_at = utcnow() + timedelta(seconds=overlap_seconds)
    else:
        ep.previous_secret_ciphertext = None
        ep.previous_secret_expires_at = None
    ep.secret_ciphertext = keyring.encrypt_str(secret, aad=aad_for(ep.id))
    ep.updated_at = utcnow()
    await session.flush()
    return view, secret


async def send_test(session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> Event:
    """Publish a `webhook.test` event delivered to this endpoint only."""
    view = await get_endpoint(session, tenant_id, endpoint_id)
    if not view.subscriber.enabled:
        raise events.SubscriberDisabled(
            "The endpoint is disabled; enable it (PATCH enabled=true) before sending a test."
        )
    return await publish(
        session,
        WebhookTest(endpoint_id=endpoint_id, requested_at=utcnow()),
        tenant_id=tenant_id,
        aggregate_id=endpoint_id,
        target_subscriber_id=endpoint_id,
    )


def reveal_secret(keyring: Keyring, endpoint: WebhookEndpoint) -> str:
    return keyring.decrypt_str(endpoint.secret_ciphertext, aad=aad_for(endpoint.id))
