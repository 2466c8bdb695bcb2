"""Read side: payments and refunds as the API shows them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from tradeflow.payments.models import Payment, ProcessorOperation, Refund
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import CaptureOut, PaymentOut, RefundOut

CAPTURABLE = ("requires_capture", "partially_captured")


def _payment_out(payment: Payment, operations: Sequence[ProcessorOperation]) -> PaymentOut:
    captures = [op for op in operations if op.kind == "capture"]
    in_flight = sum(op.amount_minor for op in captures if op.status in ("pending", "unknown"))
    capturable = 0
    if payment.status in CAPTURABLE:
        capturable = max(payment.amount_minor - payment.amount_captured_minor - in_flight, 0)
    return PaymentOut(
        id=payment.id,
        invoice_id=payment.invoice_id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        processor=payment.processor,
        processor_payment_id=payment.processor_payment_id,
        status=payment.status,
        capture_method=payment.capture_method,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        amount_captured_minor=payment.amount_captured_minor,
        amount_refunded_minor=payment.amount_refunded_minor,
        amount_capturable_minor=capturable,
        fee_minor=payment.fee_minor,
        payment_method=payment.payment_method,
        description=payment.description,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        captures=[
            CaptureOut(
                id=op.id,
                amount_minor=op.amount_minor,
                status=op.status,
                created_at=op.created_at,
                completed_at=op.completed_at,
            )
            for op in captures
        ],
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


async def payment_out(repo: PaymentsRepository, payment: Payment) -> PaymentOut:
    await repo.session.flush()
    await repo.session.refresh(payment)
    return _payment_out(payment, await repo.operations([payment.id], kind="capture"))


async def payments_out(repo: PaymentsRepository, payments: Sequence[Payment]) -> list[PaymentOut]:
    """Many payments with their captures in one query."""
    by_payment: dict[uuid.UUID, list[ProcessorOperation]] = defaultdict(list)
    if payments:
        for op in await repo.operations([p.id for p in payments], kind="capture"):
            by_payment[op.payment_id].append(op)
    return [_payment_out(p, by_payment[p.id]) for p in payments]


async def refund_out(repo: PaymentsRepository, refund: Refund) -> RefundOut:
    await repo.session.flush()
    await repo.session.refresh(refund)  # server-side timestamps
    return RefundOut.model_validate(refund)
