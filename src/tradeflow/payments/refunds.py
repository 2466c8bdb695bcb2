"""Refunding what a payment captured (record, call, outcome; see `service`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import Idempotency
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.payments import configuration, facts
from tradeflow.payments.errors import InvalidPaymentRequest, PaymentStateConflict
from tradeflow.payments.models import Refund
from tradeflow.payments.processors.base import (
    ProcessorError,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundState,
)
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import RefundCreate
from tradeflow.payments.service import (
    Begun,
    Finished,
    Outcome,
    mark_unknown,
    new_operation,
    processor_down,
    refused,
    staff_only,
)
from tradeflow.payments.views import refund_out

# -- refunds -----------------------------------------------------------------------------------


async def begin_refund(
    session: AsyncSession,
    keyring: Keyring,
    *,
    principal: Principal,
    body: RefundCreate,
    idem: Idempotency,
) -> Begun:
    staff_only(principal, "refund payments")
    repo = PaymentsRepository(session, principal.tenant_id)
    payment = await repo.payment(body.payment_id, for_update=True)
    if payment is None:
        raise InvalidPaymentRequest(f"No payment {body.payment_id}.", field="payment_id")
    pending = await repo.pending_refunds_minor(payment.id)
    refundable = payment.amount_captured_minor - payment.amount_refunded_minor - pending
    if refundable <= 0:
        raise PaymentStateConflict(
            f"Nothing of this payment is refundable (captured {payment.amount_captured_minor}, "
            f"refunded {payment.amount_refunded_minor}, {pending} being refunded).",
            payment_status=payment.status,
        )
    amount = body.amount_minor if body.amount_minor is not None else refundable
    if amount > refundable:
        raise InvalidPaymentRequest(f"At most {refundable} can be refunded.", field="amount_minor")
    processor = await configuration.for_payment(
        session, keyring, tenant_id=principal.tenant_id, name=payment.processor
    )
    refund = Refund(
        id=uuid7(),
        tenant_id=principal.tenant_id,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        processor=payment.processor,
        processor_version=0,
        status="pending",
        amount_minor=amount,
        currency=payment.currency,
        reason=body.reason,
        created_by=principal.user_id,
    )
    await repo.add(refund)
    op = new_operation(
        tenant_id=principal.tenant_id,
        payment_id=payment.id,
        kind="refund",
        amount_minor=amount,
        idem=idem,
        refund_id=refund.id,
    )
    await repo.add(op)
    return Begun(
        kind="refund",
        tenant_id=principal.tenant_id,
        payment_id=payment.id,
        operation_id=op.id,
        processor=processor,
        amount_minor=amount,
        refund_id=refund.id,
        processor_payment_id=payment.processor_payment_id,
        reason=body.reason,
    )


async def finish_refund(session: AsyncSession, begun: Begun, outcome: Outcome) -> Finished:
    assert begun.refund_id is not None
    repo = PaymentsRepository(session, begun.tenant_id)
    payment = await repo.payment(begun.payment_id, for_update=True)
    refund = await repo.refund(begun.refund_id, for_update=True)
    op = await repo.operation(begun.operation_id, for_update=True)
    assert payment is not None
    assert refund is not None
    assert op is not None
    location = f"/v1/refunds/{refund.id}"
    if isinstance(outcome, RefundState):
        await facts.apply_refund(session, repo, payment, refund, outcome)
        if outcome.status != "pending":
            facts.settle(op, "succeeded" if outcome.status == "succeeded" else "failed")
        return Finished(201, (await refund_out(repo, refund)).model_dump(mode="json"), location)
    if isinstance(outcome, ProcessorUnavailable | ProcessorRejected) and op.status == "pending":
        await repo.remove(refund)  # its operation goes with it
        error = (
            refused(outcome) if isinstance(outcome, ProcessorRejected) else processor_down(begun)
        )
        return Finished(error.status, {}, location, error=error)
    assert isinstance(outcome, ProcessorError)
    if op.status == "pending":
        mark_unknown(op, outcome)
    return Finished(202, (await refund_out(repo, refund)).model_dump(mode="json"), location)
