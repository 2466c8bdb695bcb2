"""Posting rules: which lines each business event books. Pure functions, no database.

* `invoice.issued`: Dr receivables (total) / Cr revenue (total − tax), Cr tax payable (tax)
* `payment.captured`: Dr processor clearing or cash (amount − fee), Dr processor fees (fee)
  / Cr receivables (amount)
* `refund.succeeded`: Dr refunds (amount − its tax share), Dr tax payable (tax share)
  / Cr processor clearing or cash (amount)
* `invoice.voided`: the mirror of `invoice.issued` — Dr revenue, Dr tax payable
  / Cr receivables

Payloads are read tolerantly (unknown fields ignored) — the publishing context
owns their shape, and a new optional field there must not stop the books.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tradeflow.ledger import chart
from tradeflow.ledger.errors import InvalidEventPayload
from tradeflow.ledger.schemas import Currency

# Settled outside a card processor: these go straight to cash, not processor clearing.
DIRECT_METHODS = frozenset({"bank_transfer", "cash", "cheque", "check", "manual", "offline"})


@dataclass(frozen=True, slots=True)
class DraftLine:
    account: str  # a system key of the chart (`chart.RECEIVABLES`, …)
    debit_minor: int = 0
    credit_minor: int = 0
    customer_id: uuid.UUID | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry to post: one currency, lines that balance."""

    currency: str
    description: str
    lines: tuple[DraftLine, ...]
    refs: dict[str, str] = field(default_factory=dict)


class _Facts(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class InvoiceFacts(_Facts):
    invoice_id: uuid.UUID
    number: str | None = None
    order_id: uuid.UUID | None = None
    customer_id: uuid.UUID
    currency: Currency
    tax_minor: int = Field(default=0, ge=0)
    total_minor: int = Field(ge=0)


class PaymentFacts(_Facts):
    payment_id: uuid.UUID
    invoice_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    amount_minor: int = Field(ge=0)
    currency: Currency
    fee_minor: int | None = Field(default=None, ge=0)
    processor: str | None = None
    method: str | None = None


class RefundFacts(_Facts):
    refund_id: uuid.UUID | None = None
    payment_id: uuid.UUID
    invoice_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    amount_minor: int = Field(ge=0)
    currency: Currency
    processor: str | None = None
    method: str | None = None


F = TypeVar("F", bound=_Facts)


def parse(model: type[F], payload: dict[str, Any]) -> F:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEventPayload(f"payload does not fit {model.__name__}: {exc}") from exc


def _refs(**ids: object) -> dict[str, str]:
    return {k: str(v) for k, v in ids.items() if v is not None}


def _settlement(facts: PaymentFacts | RefundFacts) -> str:
    """Cash when the money moved outside a card processor, else the processor's clearing."""
    direct = {facts.method, facts.processor} & DIRECT_METHODS
    return chart.CASH if direct else chart.PROCESSOR_CLEARING


def invoice_issued(facts: InvoiceFacts) -> Draft | None:
    """Dr receivables / Cr revenue + Cr tax payable. A zero invoice books nothing."""
    if facts.total_minor == 0:
        return None
    if facts.tax_minor > facts.total_minor:
        raise InvalidEventPayload(
            f"tax_minor {facts.tax_minor} exceeds total_minor {facts.total_minor}"
        )
    # Revenue is what the customer owes less tax: discounts, shipping and rounding that
    # sit between subtotal and total then land in revenue rather than unbalancing it.
    net = facts.total_minor - facts.tax_minor
    customer = facts.customer_id
    label = facts.number or str(facts.invoice_id)
    lines = [DraftLine(chart.RECEIVABLES, debit_minor=facts.total_minor, customer_id=customer)]
    if net:
        lines.append(DraftLine(chart.REVENUE, credit_minor=net, customer_id=customer))
    if facts.tax_minor:
        lines.append(
            DraftLine(chart.TAX_PAYABLE, credit_minor=facts.tax_minor, customer_id=customer)
        )
    return Draft(
        currency=facts.currency,
        description=f"Invoice {label} issued",
        lines=tuple(lines),
        refs=_refs(
            invoice_id=facts.invoice_id,
            invoice_number=facts.number,
            order_id=facts.order_id,
            customer_id=customer,
        ),
    )


def payment_captured(facts: PaymentFacts, *, customer_id: uuid.UUID | None) -> Draft | None:
    """Dr clearing (or cash) net of the fee + Dr fees / Cr receivables the whole amount."""
    if facts.amount_minor == 0:
        return None
    fee = facts.fee_minor or 0
    settle = _settlement(facts)
    lines: list[DraftLine] = []
    net = facts.amount_minor - fee
    if net > 0:
        lines.append(DraftLine(settle, debit_minor=net, customer_id=customer_id))
    if fee:
        lines.append(DraftLine(chart.PROCESSOR_FEES, debit_minor=fee, memo="processor fee"))
    if net < 0:  # a fee larger than a (tiny) payment: the processor takes the difference
        lines.append(DraftLine(settle, credit_minor=-net))
    lines.append(
        DraftLine(chart.RECEIVABLES, credit_minor=facts.amount_minor, customer_id=customer_id)
    )
    return Draft(
        currency=facts.currency,
        description=f"Payment {facts.payment_id} captured",
        lines=tuple(lines),
        refs=_refs(
            payment_id=facts.payment_id,
            invoice_id=facts.invoice_id,
            order_id=facts.order_id,
            customer_id=customer_id,
        ),
    )


@dataclass(frozen=True, slots=True)
class InvoiceTax:
    """What the ledger holds about an invoice's tax when a refund of it is booked."""

    total_minor: int  # the invoice's total as booked (receivables debit)
    tax_minor: int  # its tax as booked (tax payable credit)
    refunded_minor: int = 0  # refunds of it booked before this one (gross)
    tax_refunded_minor: int = 0  # the tax those refunds took back


def refund_tax(amount_minor: int, invoice: InvoiceTax | None) -> int:
    """The tax share of a refund: the invoice's tax rate applied to everything refunded of it
    so far, rounded half up, less the tax earlier refunds already took back.

    Working on the cumulative amount means partial refunds never drift by rounding: once
    the whole invoice is refunded, exactly its whole tax has been taken back.
    """
    if invoice is None or invoice.total_minor <= 0 or invoice.tax_minor <= 0:
        return 0
    refunded = min(invoice.refunded_minor + amount_minor, invoice.total_minor)
    target = (2 * refunded * invoice.tax_minor + invoice.total_minor) // (2 * invoice.total_minor)
    target = min(target, invoice.tax_minor)
    return max(0, min(amount_minor, target - invoice.tax_refunded_minor))


def refund_succeeded(
    facts: RefundFacts, *, customer_id: uuid.UUID | None, tax_minor: int = 0
) -> Draft | None:
    """Dr refunds (net of tax) + Dr tax payable (the refund's tax share) / Cr clearing (or
    cash): a refund gives back the tax the invoice charged, so it is no longer owed."""
    if facts.amount_minor == 0:
        return None
    settle = _settlement(facts)
    lines = []
    if facts.amount_minor - tax_minor:
        lines.append(
            DraftLine(
                chart.REFUNDS,
                debit_minor=facts.amount_minor - tax_minor,
                customer_id=customer_id,
            )
        )
    if tax_minor:
        lines.append(DraftLine(chart.TAX_PAYABLE, debit_minor=tax_minor, customer_id=customer_id))
    lines.append(DraftLine(settle, credit_minor=facts.amount_minor, customer_id=customer_id))
    return Draft(
        currency=facts.currency,
        description=f"Refund of payment {facts.payment_id}",
        lines=tuple(lines),
        refs=_refs(
            refund_id=facts.refund_id,
            payment_id=facts.payment_id,
            invoice_id=facts.invoice_id,
            order_id=facts.order_id,
            customer_id=customer_id,
        ),
    )


def invoice_voided(facts: InvoiceFacts) -> Draft | None:
    """The mirror of `invoice_issued`: Dr revenue + Dr tax payable / Cr receivables."""
    issued = invoice_issued(facts)
    if issued is None:
        return None
    label = facts.number or str(facts.invoice_id)
    return Draft(
        currency=issued.currency,
        description=f"Invoice {label} voided",
        lines=tuple(
            DraftLine(
                line.account,
                debit_minor=line.credit_minor,
                credit_minor=line.debit_minor,
                customer_id=line.customer_id,
                memo=line.memo,
            )
            for line in issued.lines
        ),
        refs=issued.refs,
    )


POSTED_EVENT_TYPES = (
    "invoice.issued",
    "invoice.voided",
    "payment.captured",
    "refund.succeeded",
)
