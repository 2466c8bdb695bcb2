"""Request and response bodies of the orders, tax-rate and invoice endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tradeflow.kit.text import Description, clean_line, clean_text
from tradeflow.orders.totals import MAX_LINES, MAX_QUANTITY

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
SkuCode = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Reference = Annotated[str, StringConstraints(max_length=100), AfterValidator(clean_line)]
Reason = Annotated[str, StringConstraints(max_length=1000), AfterValidator(clean_text)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(clean_line)]
TaxCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderLineIn(Strict):
    sku: SkuCode = Field(description="SKU code, as in the catalog.")
    quantity: int = Field(
        gt=0, le=MAX_QUANTITY, description=f"Units ordered, 1–{MAX_QUANTITY}.", strict=True
    )
    tax_code: TaxCode | None = Field(
        default=None, description="A tax rate's code; the tenant's default rate when omitted."
    )


class OrderCreate(Strict):
    customer_id: uuid.UUID = Field(description="The customer company ordering.")
    currency: Currency = Field(description="ISO 4217; must be the customer's currency.")
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)
    reference: Reference | None = Field(default=None, description="The buyer's PO number.")
    notes: Description | None = None


class OrderPatch(Strict):
    """Fields a client may change after placing; send only what changes."""

    reference: Reference | None = None
    notes: Description | None = None


class DecisionIn(Strict):
    reason: Reason | None = None


class PriceRuleOut(BaseModel):
    kind: str
    id: uuid.UUID | None = None
    name: str | None = None
    detail: Any = None


class OrderLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    sku: str
    sku_id: uuid.UUID
    product_id: uuid.UUID
    name: str
    unit: str
    quantity: int
    unit_price_minor: int
    tax_code: str | None
    tax_rate: Decimal = Field(description="Percent, e.g. 20.0000.")
    net_minor: int
    tax_minor: int
    total_minor: int
    price_rule: dict[str, Any] = Field(description="The pricing rule that won at placing time.")


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: str
    version: int = Field(description='Bumped on every change; the ETag is `"<version>"`.')
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    reference: str | None
    notes: str | None
    placed_by: str
    buyer_user_id: uuid.UUID | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    confirmed_at: datetime | None
    paid_at: datetime | None
    fulfilled_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    invoice_id: uuid.UUID | None = None
    actions: list[str] = Field(
        default_factory=list,
        description="What the caller may do to the order now: its state's transitions less "
        "those the caller's scopes or role forbid (approve/reject only for an approver of the "
        "ordering company, confirm/fulfil only for the seller's staff).",
    )
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLineOut] = Field(default_factory=list)


class OrderSummaryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: str
    version: int
    total_minor: int
    reference: str | None
    created_at: datetime


class TaxRateIn(Strict):
    code: TaxCode
    name: Name
    rate: Decimal = Field(
        ge=0, le=100, max_digits=7, decimal_places=4, description='Percent, e.g. "20".'
    )
    is_default: bool = False


class TaxRatePatch(Strict):
    name: Name | None = None
    is_default: bool | None = None
    active: bool | None = None


class TaxRateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    rate: Decimal
    is_default: bool
    active: bool
    created_at: datetime


class InvoiceView(BaseModel):
    """The public contract other contexts (payments) read through `service.get_invoice`."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    number: str
    order_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    total_minor: int
    amount_paid_minor: int
    amount_refunded_minor: int
    status: str
    due_date: date


class InvoiceOut(InvoiceView):
    customer_name: str
    subtotal_minor: int
    tax_minor: int
    amount_due_minor: int = Field(
        description="total − captured, never below 0; 0 once void or refunded."
    )
    issued_at: datetime
    payment_terms_days: int
    html_url: str
    pdf_url: str
