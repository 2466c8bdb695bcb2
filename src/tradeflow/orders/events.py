"""Events the orders context publishes: one per order transition, and `invoice.issued`.

Payloads carry ids and the facts frozen at the time (status, amounts, currency), so a
subscriber never has to read our tables to act on them.
"""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from tradeflow.events.catalogue import EventPayload, event_type


class OrderEvent(EventPayload):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: str = Field(description="The order's status after the transition.")
    previous_status: str | None = Field(default=None, description="Status before it.")
    currency: str = Field(description="ISO 4217 code.")
    total_minor: int = Field(description="Order total incl. tax, in minor units.")
    version: int = Field(description="The order's version after the change (its ETag).")


class OrderLineFact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: int
    sku: str
    quantity: int
    unit_price_minor: int
    tax_minor: int
    total_minor: int


@event_type("order.created", aggregate="order")
class OrderCreated(OrderEvent):
    """An order was placed: lines priced and snapshotted, totals fixed."""

    subtotal_minor: int
    tax_minor: int
    placed_by: str = Field(description="`user:<id>` or `api_key:<id>`.")
    buyer_user_id: uuid.UUID | None = None
    lines: list[OrderLineFact]


@event_type("order.approval_requested", aggregate="order")
class OrderApprovalRequested(OrderEvent):
    """The order exceeds the buyer's spending limit and waits for an approver of the company."""

    buyer_user_id: uuid.UUID | None = None
    spending_limit_minor: int | None = None
    approver_user_ids: list[uuid.UUID] = Field(default_factory=list)


@event_type("order.approved", aggregate="order")
class OrderApproved(OrderEvent):
    """An approver of the customer company approved the order."""

    decided_by: str


@event_type("order.rejected", aggregate="order")
class OrderRejected(OrderEvent):
    """An approver of the customer company rejected the order (final)."""

    decided_by: str
    reason: str | None = None


@event_type("order.confirmed", aggregate="order")
class OrderConfirmed(OrderEvent):
    """The seller confirmed the order after the credit check; an invoice follows at once."""


@event_type("order.invoiced", aggregate="order")
class OrderInvoiced(OrderEvent):
    """The order's invoice was issued."""

    invoice_id: uuid.UUID
    invoice_number: str


@event_type("order.partially_paid", aggregate="order")
class OrderPartiallyPaid(OrderEvent):
    """Part of the invoice was paid."""

    invoice_id: uuid.UUID
    amount_paid_minor: int


@event_type("order.paid", aggregate="order")
class OrderPaid(OrderEvent):
    """The invoice is paid in full."""

    invoice_id: uuid.UUID
    amount_paid_minor: int


@event_type("order.fulfilled", aggregate="order")
class OrderFulfilled(OrderEvent):
    """The goods were shipped or the service delivered."""


@event_type("order.cancelled", aggregate="order")
class OrderCancelled(OrderEvent):
    """The order was cancelled; its invoice, if any, is void."""

    reason: str | None = None
    invoice_id: uuid.UUID | None = None


@event_type("order.refunded", aggregate="order")
class OrderRefunded(OrderEvent):
    """Everything paid for the order was refunded."""

    invoice_id: uuid.UUID
    amount_refunded_minor: int


@event_type("invoice.issued", aggregate="invoice")
class InvoiceIssued(EventPayload):
    """An invoice was issued for a confirmed order, with its gap-free number and due date."""

    invoice_id: uuid.UUID
    number: str
    order_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    due_date: date


@event_type("order.updated", aggregate="order")
class OrderUpdated(OrderEvent):
    """The order's reference or notes changed (no state change)."""

    changed: list[str] = Field(description="Names of the fields that changed.")


@event_type("invoice.voided", aggregate="invoice")
class InvoiceVoided(EventPayload):
    """An unpaid invoice was voided because its order was cancelled (reverse what it booked)."""

    invoice_id: uuid.UUID
    number: str
    order_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    reason: str | None = None
