"""Inbound processor webhooks: verified, stored once by external id, applied once by the worker.

Receiving (`receive`, in the request): route by the account the webhook
names to the one tenant that connected that account, verify signature and
timestamp with that tenant's secret (bad → 401, stale → 400), store the event
under its external id (a repeat only bumps `deliveries`) and, in the same
transaction, publish `processor_event.received`. The answer is 202: nothing
is applied in the request.

Applying (`apply`, the worker's handler for that event, in the handler's own
transaction with its consumption record): parse the stored payload, lock the
payment, and hand the snapshot to `facts`, which ignores anything not newer
than what we hold. `processed_at` makes a second run a no-op even without
the consumption record.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.events import publish
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments import configuration, facts, metrics
from tradeflow.payments.errors import WebhookInvalid, WebhookSignatureError, WebhookStale
from tradeflow.payments.events import ProcessorEventReceived
from tradeflow.payments.models import Payment, Refund
from tradeflow.payments.processors.base import (
    ProcessorEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
    WebhookTimestampStale,
)
from tradeflow.payments.processors.registry import processor_class
from tradeflow.payments.repository import PaymentsRepository, config_for_account

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Received:
    tenant_id: uuid.UUID
    external_id: str
    duplicate: bool


async def receive(
    db: Database,
    keyring: Keyring,
    *,
    processor: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime | None = None,
) -> Received:
    cls = processor_class(processor)
    account = cls.webhook_account(body, headers)
    # One answer for "no such account" and "wrong signature": neither tells a caller
    # which accounts are connected.
    unverified = WebhookSignatureError("The webhook signature does not verify.")
    if account is None:
        metrics.PROCESSOR_WEBHOOKS.labels(processor, "bad_signature").inc()
        raise unverified
    async with db.system_session() as session:
        row = await config_for_account(session, processor, account)
        loaded = configuration.load(keyring, row) if row is not None else None
    if loaded is None:
        metrics.PROCESSOR_WEBHOOKS.labels(processor, "bad_signature").inc()
        raise unverified
    plugin = loaded.build()
    try:
        event = plugin.verify_webhook(body, headers, now=now or utcnow())
    except WebhookSignatureInvalid as exc:
        metrics.PROCESSOR_WEBHOOKS.labels(processor, "bad_signature").inc()
        log.warning("processor_webhook_unverified", processor=processor, reason=str(exc))
        raise WebhookSignatureError(f"The webhook signature does not verify: {exc}.") from exc
    except WebhookTimestampStale as exc:
        metrics.PROCESSOR_WEBHOOKS.labels(processor, "stale").inc()
        log.warning("processor_webhook_stale", processor=processor, reason=str(exc))
        raise WebhookStale(f"{exc}.") from exc
    except WebhookPayloadInvalid as exc:
        metrics.PROCESSOR_WEBHOOKS.labels(processor, "invalid").inc()
        raise WebhookInvalid(f"{exc}.") from exc
    finally:
        await plugin.aclose()
    async with db.tenant_session(loaded.tenant_id) as session:
        stored = await store(session, tenant_id=loaded.tenant_id, processor=processor, event=event)
        await session.commit()
    metrics.PROCESSOR_WEBHOOKS.labels(processor, "duplicate" if stored is None else "stored").inc()
    return Received(loaded.tenant_id, event.external_id, duplicate=stored is None)


async def store(
    session: AsyncSession, *, tenant_id: uuid.UUID, processor: str, event: ProcessorEvent
) -> uuid.UUID | None:
    """Store a verified event once; publish it for the worker. None: seen before."""
    repo = PaymentsRepository(session, tenant_id)
    webhook_id = await repo.store_webhook(
        {
            "id": uuid.uuid4(),
            "processor": processor,
            "external_id": event.external_id,
            "event_type": event.type,
            "object_id": event.object_id,
            "payload": event.raw,
        }
    )
    if webhook_id is not None:
        await publish(
            session,
            ProcessorEventReceived(
                webhook_id=webhook_id,
                processor=processor,
                external_id=event.external_id,
                type=event.type,
                object_id=event.object_id,
            ),
            tenant_id=tenant_id,
            aggregate_id=_aggregate_id(processor, event.object_id or event.external_id),
        )
    return webhook_id


def _aggregate_id(processor: str, object_id: str) -> str:
    # Events about one processor object apply in turn; the outbox keeps ids to 100 characters.
    value = f"{processor}:{object_id}"
    if len(value) <= 100:
        return value
    return f"{processor}:sha256:{hashlib.sha256(object_id.encode()).hexdigest()}"[:100]


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def apply(session: AsyncSession, *, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> str:
    """Apply one stored webhook (the worker's handler); returns its outcome."""
    repo = PaymentsRepository(session, tenant_id)
    row = await repo.webhook(webhook_id, for_update=True)
    if row is None:
        return "missing"
    if row.processed_at is not None:
        return row.outcome or "applied"
    event = processor_class(row.processor).parse_event(row.payload)
    outcome = "ignored"
    if event.charge is not None:
        payment = await _payment(repo, row.processor, event.charge.id, event.charge.reference)
        if payment is None:
            outcome = "unknown_object"
        else:
            applied = await facts.apply_charge(session, repo, payment, event.charge)
            outcome = "applied" if applied.changed else "stale"
    elif event.refund is not None:
        payment = await _payment(repo, row.processor, event.refund.payment_id, None)
        refund = await _refund(repo, row.processor, event.refund.id, event.refund.reference)
        if payment is not None and refund is None:
            # Refunded at the processor (its dashboard), not by our call: adopt it.
            applied = await facts.adopt_refund(session, repo, payment, event.refund)
            outcome = "adopted" if applied.changed else "stale"
        elif payment is None or refund is None or refund.payment_id != payment.id:
            outcome = "unknown_object"
        else:
            applied = await facts.apply_refund(session, repo, payment, refund, event.refund)
            outcome = "applied" if applied.changed else "stale"
    row.processed_at = utcnow()
    row.outcome = outcome
    log.info(
        "processor_webhook_applied",
        webhook_id=str(webhook_id),
        external_id=row.external_id,
        type=row.event_type,
        outcome=outcome,
    )
    return outcome


async def _payment(
    repo: PaymentsRepository, processor: str, processor_id: str, reference: str | None
) -> Payment | None:
    payment = await repo.payment_by_processor_id(processor, processor_id, for_update=True)
    if payment is None and (payment_id := _uuid(reference)) is not None:
        # The webhook can beat our own record of the processor's id (step 3).
        payment = await repo.payment(payment_id, for_update=True)
        if payment is not None and payment.processor != processor:
            payment = None
    return payment


async def _refund(
    repo: PaymentsRepository, processor: str, processor_id: str, reference: str | None
) -> Refund | None:
    refund = await repo.refund_by_processor_id(processor, processor_id, for_update=True)
    if refund is None and (refund_id := _uuid(reference)) is not None:
        refund = await repo.refund(refund_id, for_update=True)
        if refund is not None and refund.processor != processor:
            refund = None
    return refund
