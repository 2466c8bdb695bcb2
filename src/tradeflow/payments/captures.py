"""Capturing an authorised payment, in full or in parts (record, call, outcome; see `service`)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import Idempotency
from tradeflow.kit.keyring import Keyring
from tradeflow.payments import configuration, facts
from tradeflow.payments.errors import InvalidPaymentRequest, PaymentNotFound, PaymentStateConflict
from tradeflow.payments.processors.base import (
    ChargeState,
    ProcessorError,
    ProcessorRejected,
    ProcessorUnavailable,
)
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import CaptureCreate
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
from tradeflow.payments.views import payment_out

# -- captures ----------------------------------------------------------------------------------


async def begin_capture(
    session: AsyncSession,
    keyring: Keyring,
    *,
    principal: Principal,
    payment_id: uuid.UUID,
    body: CaptureCreate,
    idem: Idempotency,
) -> Begun:
    staff_only(principal, "capture payments")
    repo = PaymentsRepository(session, principal.tenant_id)
    payment = await repo.payment(payment_id, for_update=True)
    if payment is None:
        raise PaymentNotFound(f"No payment {payment_id}.")
    if payment.status not in ("requires_capture", "partially_captured"):
        raise PaymentStateConflict(
            f"The payment is {payment.status}; only authorised payments can be captured.",
            payment_status=payment.status,
        )
    in_flight = await repo.open_capture_minor(payment.id)
    capturable = payment.amount_minor - payment.amount_captured_minor - in_flight
    if capturable <= 0:
        raise PaymentStateConflict(
            f"Nothing is left to capture ({in_flight} is being captured right now).",
            payment_status=payment.status,
        )
    amount = body.amount_minor if body.amount_minor is not None else capturable
    if amount > capturable:
        raise InvalidPaymentRequest(
            f"At most {capturable} can still be captured.", field="amount_minor"
        )
    processor = await configuration.for_payment(
        session, keyring, tenant_id=principal.tenant_id, name=payment.processor
    )
    op = new_operation(
        tenant_id=principal.tenant_id,
        payment_id=payment.id,
        kind="capture",
        amount_minor=amount,
        idem=idem,
    )
    await repo.add(op)
    return Begun(
        kind="capture",
        tenant_id=principal.tenant_id,
        payment_id=payment.id,
        operation_id=op.id,
        processor=processor,
        amount_minor=amount,
        processor_payment_id=payment.processor_payment_id,
    )


async def finish_capture(session: AsyncSession, begun: Begun, outcome: Outcome) -> Finished:
    repo = PaymentsRepository(session, begun.tenant_id)
    payment = await repo.payment(begun.payment_id, for_update=True)
    op = await repo.operation(begun.operation_id, for_update=True)
    assert payment is not None
    assert op is not None
    location = f"/v1/payments/{payment.id}"
    if isinstance(outcome, ChargeState):
        await facts.apply_charge(session, repo, payment, outcome)
        facts.settle(op, "succeeded")  # the processor answered 2xx to this capture
        return Finished(200, (await payment_out(repo, payment)).model_dump(mode="json"), location)
    if isinstance(outcome, ProcessorUnavailable | ProcessorRejected) and op.status == "pending":
        await repo.delete_operation(op.id)
        error = (
            processor_down(begun)
            if isinstance(outcome, ProcessorUnavailable)
            else refused(outcome, conflict_codes=frozenset({"charge_not_capturable"}))
        )
        return Finished(error.status, {}, location, error=error)
    assert isinstance(outcome, ProcessorError)
    if op.status == "pending":
        mark_unknown(op, outcome)
    return Finished(202, (await payment_out(repo, payment)).model_dump(mode="json"), location)
