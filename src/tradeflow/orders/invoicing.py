"""Invoices: issued on confirmation with a gap-free number, voided on cancellation, settled by
payment facts from the payments context.

Lock order, everywhere: the order row first, then its invoice row, then the tenant-year
counter — so confirmations, cancellations and payment handlers never deadlock each other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict

from tradeflow.customers import service as customers
from tradeflow.events.outbox import publish
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.orders import events as ev
from tradeflow.orders.errors import CreditLimitExceeded, IllegalTransition, InvoiceNotFound
from tradeflow.orders.models import Invoice, Order
from tradeflow.orders.repository import OrdersRepository
from tradeflow.orders.schemas import InvoiceView
from tradeflow.orders.states import OrderStatus, can_transition

log = structlog.get_logger(__name__)
S = OrderStatus


def invoice_number(year: int, sequence: int) -> str:
    """`INV-2026-000042`: the tenant's 42nd invoice of 2026 (six digits, more when needed)."""
    return f"INV-{year}-{sequence:06d}"


async def get_invoice(
    session: Any, invoice_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None
) -> InvoiceView:
    """The invoice as other contexts see it; the session's tenant unless `tenant_id` is given.

    Raises `InvoiceNotFound` (a `NotFound`) when the tenant has no such invoice.
    """
    invoice = await OrdersRepository(session, tenant_id).invoice(invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"No invoice {invoice_id}.")
    return InvoiceView.model_validate(invoice)


def _order_fact(order: Order, previous: str, status: str) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "customer_id": order.customer_id,
        "status": status,
        "previous_status": previous,
        "currency": order.currency,
        "total_minor": order.total_minor,
        "version": order.version,
    }


async def issue_invoice(
    session: Any, repo: OrdersRepository, order: Order, *, confirmed_at: datetime
) -> Invoice:
    """Confirm a locked order: credit check, gap-free number, invoice row, three events.

    The order moves confirmed → invoiced in this one transaction (and on to paid when the
    total is zero); `order.confirmed`, `invoice.issued` and `order.invoiced` are published.
    """
    assert repo.tenant_id is not None
    tenant_id = repo.tenant_id
    customer = await customers.get_customer(session, order.customer_id)
    await repo.lock_customer_credit(customer.id)
    if customer.credit_limit_minor is not None:
        open_minor = await repo.open_receivables(customer.id)
        if open_minor + order.total_minor > customer.credit_limit_minor:
            raise CreditLimitExceeded(
                f"Open receivables {open_minor} + this order {order.total_minor} "
                f"{order.currency} exceed the credit limit {customer.credit_limit_minor}.",
                credit_limit_minor=customer.credit_limit_minor,
                open_receivables_minor=open_minor,
                order_total_minor=order.total_minor,
            )

    year = confirmed_at.year
    sequence = await repo.next_invoice_number(year)
    zero = order.total_minor == 0
    values = {
        "id": uuid7(),
        "tenant_id": tenant_id,
        "order_id": order.id,
        "customer_id": customer.id,
        "customer_name": customer.name,
        "number": invoice_number(year, sequence),
        "year": year,
        "sequence": sequence,
        "currency": order.currency,
        "subtotal_minor": order.subtotal_minor,
        "tax_minor": order.tax_minor,
        "total_minor": order.total_minor,
        "amount_paid_minor": 0,
        "amount_refunded_minor": 0,
        "status": "paid" if zero else "open",
        "issued_at": confirmed_at,
        "due_date": confirmed_at.date() + timedelta(days=customer.payment_terms_days),
        "payment_terms_days": customer.payment_terms_days,
        "created_at": confirmed_at,
        "updated_at": confirmed_at,
    }
    await repo.insert_invoice(values)
    invoice = Invoice(**values)

    previous = order.status
    final = S.PAID if zero else S.INVOICED
    changes: dict[str, Any] = {"status": final.value, "confirmed_at": confirmed_at}
    if zero:
        changes["paid_at"] = confirmed_at
    await repo.update_order(order, changes)

    async def emit(event: Any, aggregate_id: uuid.UUID) -> None:
        await publish(
            session, event, tenant_id=tenant_id, aggregate_id=aggregate_id, occurred_at=confirmed_at
        )

    await emit(ev.OrderConfirmed(**_order_fact(order, previous, S.CONFIRMED.value)), order.id)
    await emit(
        ev.InvoiceIssued(
            invoice_id=invoice.id,
            number=invoice.number,
            order_id=order.id,
            customer_id=customer.id,
            currency=invoice.currency,
            subtotal_minor=invoice.subtotal_minor,
            tax_minor=invoice.tax_minor,
            total_minor=invoice.total_minor,
            due_date=invoice.due_date,
        ),
        invoice.id,
    )
    await emit(
        ev.OrderInvoiced(
            **_order_fact(order, S.CONFIRMED.value, S.INVOICED.value),
            invoice_id=invoice.id,
            invoice_number=invoice.number,
        ),
        order.id,
    )
    if zero:
        await emit(
            ev.OrderPaid(
                **_order_fact(order, S.INVOICED.value, S.PAID.value),
                invoice_id=invoice.id,
                amount_paid_minor=0,
            ),
            order.id,
        )
    return invoice


async def cancel_invoice(
    session: Any, repo: OrdersRepository, order: Order, *, reason: str | None
) -> uuid.UUID | None:
    """Void the locked order's invoice, if it has one (`invoice.voided`); refuse when money
    was already taken."""
    if order.status != S.INVOICED.value:
        return None
    invoice = await repo.invoice_for_order(order.id)
    if invoice is None:
        return None
    invoice = await repo.invoice(invoice.id, for_update=True)
    assert invoice is not None
    if invoice.amount_paid_minor > 0:
        raise IllegalTransition(
            f"Invoice {invoice.number} has payments; refund them instead of cancelling.",
            current_status=order.status,
            action="cancel",
        )
    await repo.update_invoice(invoice, {"status": "void"})
    assert repo.tenant_id is not None
    await publish(
        session,
        ev.InvoiceVoided(
            invoice_id=invoice.id,
            number=invoice.number,
            order_id=order.id,
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            subtotal_minor=invoice.subtotal_minor,
            tax_minor=invoice.tax_minor,
            total_minor=invoice.total_minor,
            reason=reason,
        ),
        tenant_id=repo.tenant_id,
        aggregate_id=invoice.id,
    )
    return invoice.id


# -- payment facts (the handlers call these) ------------------------------------------------------


class PaymentFact(BaseModel):
    """The payload of `payment.captured`, `payment.failed` and `refund.succeeded`."""

    model_config = ConfigDict(extra="ignore")

    payment_id: uuid.UUID | None = None
    invoice_id: uuid.UUID
    order_id: uuid.UUID | None = None
    amount_minor: int
    currency: str


FactKind = Literal["captured", "failed", "refunded"]


def invoice_status(total: int, paid: int, refunded: int, *, current: str) -> str:
    if current == "void":
        return "void"
    if paid > 0 and refunded >= paid:
        return "refunded"
    if paid >= total:
        return "paid"
    return "partially_paid" if paid > 0 else "open"


def payment_target(total: int, paid: int, refunded: int) -> OrderStatus | None:
    if paid > 0 and refunded >= paid:
        return S.REFUNDED
    if paid >= total and paid > 0:
        return S.PAID
    return S.PARTIALLY_PAID if paid > 0 else None


def payment_path(current: OrderStatus, target: OrderStatus | None) -> list[OrderStatus]:
    """The states to walk from `current` to `target`; facts may arrive late or out of order."""
    if target is None:
        return []
    if can_transition(current, target) and not (
        current is target and target is not S.PARTIALLY_PAID
    ):
        return [target]
    if target is S.REFUNDED and can_transition(current, S.PAID):
        return [S.PAID, S.REFUNDED]
    return []


async def apply_payment_fact(
    session: Any, *, tenant_id: uuid.UUID, event_id: uuid.UUID, kind: FactKind, fact: PaymentFact
) -> None:
    """Apply one payment fact to its invoice and order, once per event (a re-run is a no-op)."""
    repo = OrdersRepository(session, tenant_id)
    found = await repo.invoice(fact.invoice_id)
    if found is None:
        raise LookupError(f"payment fact for unknown invoice {fact.invoice_id}")
    order = await repo.order(found.order_id, for_update=True)
    invoice = await repo.invoice(fact.invoice_id, for_update=True)
    assert order is not None
    assert invoice is not None
    if fact.currency != invoice.currency:
        raise ValueError(
            f"payment in {fact.currency} for invoice {invoice.number} in {invoice.currency}"
        )
    recorded = await repo.record_settlement(
        {
            "id": uuid7(),
            "tenant_id": tenant_id,
            "invoice_id": invoice.id,
            "event_id": event_id,
            "kind": kind,
            "payment_id": fact.payment_id,
            "amount_minor": fact.amount_minor,
            "currency": fact.currency,
        }
    )
    if not recorded or kind == "failed":
        return
    paid = invoice.amount_paid_minor + (fact.amount_minor if kind == "captured" else 0)
    refunded = invoice.amount_refunded_minor + (fact.amount_minor if kind == "refunded" else 0)
    await repo.update_invoice(
        invoice,
        {
            "amount_paid_minor": paid,
            "amount_refunded_minor": refunded,
            "status": invoice_status(invoice.total_minor, paid, refunded, current=invoice.status),
        },
    )
    current = S(order.status)
    if current in (S.CANCELLED, S.REJECTED):
        log.warning(
            "payment_fact_on_closed_order", order_id=str(order.id), status=current.value, kind=kind
        )
        return
    path = payment_path(current, payment_target(invoice.total_minor, paid, refunded))
    if not path:
        return
    now = utcnow()
    changes: dict[str, Any] = {"status": path[-1].value}
    if S.PAID in path and order.paid_at is None:
        changes["paid_at"] = now
    await repo.update_order(order, changes)
    previous = current.value
    for step in path:
        fact_base = _order_fact(order, previous, step.value)
        event: ev.OrderEvent
        if step is S.REFUNDED:
            event = ev.OrderRefunded(
                **fact_base, invoice_id=invoice.id, amount_refunded_minor=refunded
            )
        elif step is S.PAID:
            event = ev.OrderPaid(**fact_base, invoice_id=invoice.id, amount_paid_minor=paid)
        else:
            event = ev.OrderPartiallyPaid(
                **fact_base, invoice_id=invoice.id, amount_paid_minor=paid
            )
        await publish(session, event, tenant_id=tenant_id, aggregate_id=order.id, occurred_at=now)
        previous = step.value
