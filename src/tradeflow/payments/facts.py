"""Applying what a processor says about a charge or a refund — the one place payment state moves.

Every source of processor facts goes through here: the answer to our own
call, an inbound webhook (however late, doubled or out of order), and the
resolver's look-up after a timeout. Facts are snapshots carrying the
processor's object `version`; a snapshot no newer than what we hold is
ignored, so the final state is the newest snapshot's whatever the arrival
order. Events are derived from the *difference* between what we held and the
newer snapshot (captured 0 → 600 → `payment.captured` 600), which makes them
exactly-once however many sources report the same fact. The caller holds the
payment row lock (`for_update=True`) and commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.events import EventPayload, publish
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.payments import events as ev
from tradeflow.payments.models import Payment, ProcessorOperation, Refund
from tradeflow.payments.processors.base import ChargeState, RefundState
from tradeflow.payments.repository import PaymentsRepository

log = structlog.get_logger(__name__)


def payment_status(payment: Payment) -> str:
    """Our status, derived from the processor's status and the money that moved."""
    processor_status = payment.processor_status
    if processor_status is None:
        return "processing"
    if processor_status in ("failed", "canceled"):
        return processor_status
    if payment.amount_refunded_minor > 0:
        if payment.amount_refunded_minor >= payment.amount_captured_minor:
            return "refunded"
        return "partially_refunded"
    return processor_status


def _base(payment: Payment, amount_minor: int) -> dict[str, object]:
    return {
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "processor": payment.processor,
        "amount_minor": amount_minor,
        "currency": payment.currency,
    }


@dataclass
class Applied:
    changed: bool
    events: list[EventPayload] = field(default_factory=list)


async def _publish(session: AsyncSession, payment: Payment, events: list[EventPayload]) -> None:
    for event in events:
        await publish(session, event, tenant_id=payment.tenant_id, aggregate_id=payment.id)


def announce(payment: Payment) -> list[EventPayload]:
    """`payment.intent_created`, once: when the processor was reached (not for a refused call)."""
    if payment.announced:
        return []
    payment.announced = True
    return [
        ev.PaymentIntentCreated(
            **_base(payment, payment.amount_minor),
            capture_method=payment.capture_method,
        )
    ]


def settle(
    op: ProcessorOperation,
    status: str,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
) -> None:
    if op.status in ("succeeded", "failed"):
        return
    op.status = status
    op.error_code = error_code
    op.error_message = error_message
    op.next_check_at = None
    op.completed_at = utcnow()


async def apply_charge(
    session: AsyncSession,
    repo: PaymentsRepository,
    payment: Payment,
    state: ChargeState,
) -> Applied:
    if payment.processor_payment_id not in (None, state.id):
        log.warning(
            "processor_charge_mismatch",
            payment_id=str(payment.id),
            held=payment.processor_payment_id,
            reported=state.id,
        )
        return Applied(False)
    events: list[EventPayload] = announce(payment)
    if state.version <= payment.processor_version:
        await _publish(session, payment, events)
        await _settle_charge_operations(repo, payment, state)
        return Applied(bool(events), events)
    before_status = payment.processor_status
    before_captured = payment.amount_captured_minor
    before_fee = payment.fee_minor
    payment.processor_payment_id = state.id
    payment.processor_version = state.version
    payment.processor_status = state.status
    payment.amount_captured_minor = state.amount_captured_minor
    payment.fee_minor = max(before_fee, state.fee_minor)
    if state.status == "failed":
        payment.failure_code = state.failure_code or "declined"
        payment.failure_message = state.failure_message
    payment.status = payment_status(payment)
    if before_status is None and state.status != "failed" and payment.capture_method == "manual":
        events.append(ev.PaymentAuthorized(**_base(payment, payment.amount_minor)))
    if state.status == "failed" and before_status != "failed":
        events.append(
            ev.PaymentFailed(
                **_base(payment, payment.amount_minor),
                failure_code=payment.failure_code,
                failure_message=payment.failure_message,
            )
        )
    if state.status == "canceled" and before_status != "canceled":
        if payment.failure_code is None and await repo.operations(
            [payment.id], kind="void", open_only=True
        ):
            mark_expired(payment)  # our void's answer came back by another route first
        events.append(
            ev.PaymentCanceled(**_base(payment, payment.amount_minor), reason=payment.failure_code)
        )
    captured = state.amount_captured_minor - before_captured
    if captured > 0:
        # The fee of the captures this snapshot adds; the ledger books it with the capture.
        events.append(
            ev.PaymentCaptured(
                **_base(payment, captured),
                amount_captured_total_minor=state.amount_captured_minor,
                fee_minor=payment.fee_minor - before_fee,
            )
        )
    await _publish(session, payment, events)
    await _settle_charge_operations(repo, payment, state)
    return Applied(True, events)


async def _settle_charge_operations(
    repo: PaymentsRepository, payment: Payment, state: ChargeState
) -> None:
    """Open calls this snapshot answers: the authorisation, and captures it lists."""
    captured_refs = {c.reference for c in state.captures if c.reference}
    for op in await repo.operations([payment.id], open_only=True):
        if op.kind == "authorize":
            if state.status == "failed":
                settle(op, "failed", error_code=state.failure_code, error_message="declined")
            else:
                settle(op, "succeeded")
        elif (op.kind == "capture" and str(op.id) in captured_refs) or (
            op.kind == "void" and state.status == "canceled"
        ):
            settle(op, "succeeded")


async def apply_refund(
    session: AsyncSession,
    repo: PaymentsRepository,
    payment: Payment,
    refund: Refund,
    state: RefundState,
) -> Applied:
    if refund.processor_refund_id not in (None, state.id):
        log.warning("processor_refund_mismatch", refund_id=str(refund.id), reported=state.id)
        return Applied(False)
    events: list[EventPayload] = []
    if state.version > refund.processor_version:
        before = refund.status
        refund.processor_refund_id = state.id
        refund.processor_version = state.version
        refund.status = state.status
        refund.failure_code = state.failure_code
        if state.status == "succeeded" and before != "succeeded":
            payment.amount_refunded_minor += refund.amount_minor
            payment.status = payment_status(payment)
            events.append(
                ev.RefundSucceeded(
                    **_base(payment, refund.amount_minor),
                    refund_id=refund.id,
                    amount_refunded_total_minor=payment.amount_refunded_minor,
                )
            )
        elif state.status == "failed" and before == "pending":
            events.append(
                ev.RefundFailed(
                    **_base(payment, refund.amount_minor),
                    refund_id=refund.id,
                    failure_code=state.failure_code,
                )
            )
    await _publish(session, payment, events)
    for op in await repo.operations([payment.id], kind="refund", open_only=True):
        if op.refund_id == refund.id and state.status != "pending":
            settle(op, "succeeded" if state.status == "succeeded" else "failed")
    return Applied(bool(events), events)


PROCESSOR_ORIGIN = "Refunded at the processor"


async def adopt_refund(
    session: AsyncSession,
    repo: PaymentsRepository,
    payment: Payment,
    state: RefundState,
) -> Applied:
    """A refund made at the processor, not through us: record it from the processor's facts.

    The caller found no refund of ours by the processor's refund id nor by the
    reference we send with our own calls, and holds the payment lock, so a
    second report of the same refund finds this record by its processor id and
    goes through `apply_refund` (a no-op unless newer). The record starts at
    version 0 and `pending`, so `apply_refund` moves the money and says
    `refund.succeeded` exactly as for our own refunds. A refund the processor
    reports as failed moved no money and is not ours to announce: nothing is recorded.
    """
    if state.status == "failed":
        return Applied(False)
    refund = Refund(
        id=uuid7(),
        tenant_id=payment.tenant_id,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        processor=payment.processor,
        processor_refund_id=state.id,
        processor_version=0,
        status="pending",
        amount_minor=state.amount_minor,
        currency=state.currency,
        # No column says where a refund began; no creator and this reason do.
        reason=PROCESSOR_ORIGIN,
        created_by=None,
    )
    await repo.add(refund)
    log.info(
        "processor_refund_adopted",
        payment_id=str(payment.id),
        processor_refund_id=state.id,
        amount_minor=state.amount_minor,
    )
    return await apply_refund(session, repo, payment, refund, state)


async def fail_unprocessed_payment(
    session: AsyncSession, payment: Payment, *, code: str, message: str
) -> None:
    """The processor never got the authorisation: the payment failed, said once."""
    if payment.processor_status is not None:
        return
    events = announce(payment)
    payment.processor_status = "failed"
    payment.failure_code = code
    payment.failure_message = message
    payment.status = payment_status(payment)
    events.append(
        ev.PaymentFailed(
            **_base(payment, payment.amount_minor),
            failure_code=code,
            failure_message=message,
        )
    )
    await _publish(session, payment, events)


async def fail_unprocessed_refund(
    session: AsyncSession, payment: Payment, refund: Refund, *, code: str, message: str
) -> None:
    if refund.status != "pending":
        return
    refund.status = "failed"
    refund.failure_code = code
    refund.failure_message = message
    await _publish(
        session,
        payment,
        [
            ev.RefundFailed(
                **_base(payment, refund.amount_minor),
                refund_id=refund.id,
                failure_code=code,
            )
        ],
    )


AUTHORIZATION_EXPIRED = "authorization_expired"


def mark_expired(payment: Payment, *, window: timedelta | None = None) -> None:
    """Say why the payment is about to become `canceled`: our void of an expired
    authorisation (`payment.canceled` carries it as `reason`)."""
    payment.failure_code = AUTHORIZATION_EXPIRED
    after = f" within {window.total_seconds() / 86400:g} days" if window else " in time"
    payment.failure_message = f"The authorisation was not captured{after} and was voided."


def operation_key(op_id: uuid.UUID, kind: str) -> str:
    return f"tradeflow-{kind}-{op_id}"
