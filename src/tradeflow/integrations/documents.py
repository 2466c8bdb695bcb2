"""Our canonical documents, built from other contexts' public services and event facts.

A connector's field mapping picks from these flat dicts (their field ← one of
ours). Amounts appear twice: as integer minor units (`total_minor`) and as
a decimal string in the currency's exponent (`total`, e.g. `"119.00"`), since
remote systems usually want the latter. Documents are rebuilt from the
current state at sync time (handlers reload), so a retry pushes what is true
now, not what was true when the event was written.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.customers import service as customers
from tradeflow.kit.currency import MINOR_UNITS
from tradeflow.orders import service as orders


def decimal_text(minor: int, currency: str) -> str:
    exponent = MINOR_UNITS.get(currency, 2)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def minor_from_text(value: Any, currency: str) -> int:
    """A decimal amount in the currency's unit (`"119.00"`, 119, 119.5) → integer minor units;
    `ValueError` when it is not a number or has more decimals than the currency."""
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ValueError(f"{value!r} is not an amount") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    minor = amount.scaleb(MINOR_UNITS.get(currency, 2))
    if minor != minor.to_integral_value():
        raise ValueError(f"{value!r} has more decimals than {currency} allows")
    return int(minor)


async def customer_document(session: AsyncSession, customer_id: uuid.UUID) -> dict[str, Any]:
    view = await customers.get_customer(session, customer_id)
    return {
        "id": str(view.id),
        "name": view.name,
        "currency": view.currency,
        "payment_terms_days": view.payment_terms_days,
        "credit_limit_minor": view.credit_limit_minor,
        "credit_limit": (
            None
            if view.credit_limit_minor is None
            else decimal_text(view.credit_limit_minor, view.currency)
        ),
        "tax_id": view.tax_id,
        "billing_address": view.billing_address,
        "active": view.active,
    }


async def invoice_document(session: AsyncSession, invoice_id: uuid.UUID) -> dict[str, Any]:
    view = await orders.get_invoice(session, invoice_id)
    return {
        "id": str(view.id),
        "number": view.number,
        "order_id": str(view.order_id),
        "customer_id": str(view.customer_id),
        "currency": view.currency,
        "total_minor": view.total_minor,
        "total": decimal_text(view.total_minor, view.currency),
        "amount_paid_minor": view.amount_paid_minor,
        "amount_paid": decimal_text(view.amount_paid_minor, view.currency),
        "amount_refunded_minor": view.amount_refunded_minor,
        "amount_refunded": decimal_text(view.amount_refunded_minor, view.currency),
        "status": view.status,
        "due_date": view.due_date.isoformat(),
    }


def payment_document(payload: dict[str, Any], *, occurred_at: str) -> dict[str, Any]:
    """One document per payment; partial captures update its amount (the running total)."""
    currency = str(payload["currency"])
    amount = int(payload.get("amount_captured_total_minor") or payload["amount_minor"])
    return {
        "id": str(payload["payment_id"]),
        "invoice_id": _opt(payload.get("invoice_id")),
        "order_id": _opt(payload.get("order_id")),
        "currency": currency,
        "amount_minor": amount,
        "amount": decimal_text(amount, currency),
        "captured_at": occurred_at,
    }


def credit_note_document(payload: dict[str, Any], *, occurred_at: str) -> dict[str, Any]:
    currency = str(payload["currency"])
    amount = int(payload["amount_minor"])
    our_id = payload.get("refund_id") or f"refund-of-{payload['payment_id']}-{amount}"
    return {
        "id": str(our_id),
        "payment_id": str(payload["payment_id"]),
        "invoice_id": _opt(payload.get("invoice_id")),
        "order_id": _opt(payload.get("order_id")),
        "currency": currency,
        "amount_minor": amount,
        "amount": decimal_text(amount, currency),
        "refunded_at": occurred_at,
    }


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
