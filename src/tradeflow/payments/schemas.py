"""Request and response bodies of `/v1/payments`, `/v1/refunds` and `/v1/processors`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_AMOUNT = 10**15

PaymentStatus = Literal[
    "processing",
    "requires_capture",
    "partially_captured",
    "captured",
    "partially_refunded",
    "refunded",
    "failed",
    "canceled",
]
RefundStatus = Literal["pending", "succeeded", "failed"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaymentCreate(_In):
    invoice_id: uuid.UUID = Field(description="The invoice to pay.")
    amount_minor: int | None = Field(
        default=None,
        gt=0,
        le=MAX_AMOUNT,
        description="Minor units; default: what is still open on the invoice.",
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217; must be the invoice's currency (default: the invoice's).",
    )
    payment_method: str = Field(
        min_length=1,
        max_length=100,
        description="The processor's payment method token (sandbox: `pm_sandbox_ok`, "
        "`pm_sandbox_decline`, `pm_sandbox_insufficient_funds`, …).",
    )
    capture_method: Literal["automatic", "manual"] = Field(
        default="automatic",
        description="`automatic` captures at once; `manual` authorises, then "
        "`POST /v1/payments/{id}/capture` captures all or part.",
    )
    processor: str | None = Field(
        default=None,
        max_length=60,
        description="Which enabled processor; default: the tenant's only enabled one.",
    )
    description: str | None = Field(default=None, max_length=500)


class CaptureCreate(_In):
    amount_minor: int | None = Field(
        default=None,
        gt=0,
        le=MAX_AMOUNT,
        description="Minor units to capture; default: everything still capturable.",
    )


class RefundCreate(_In):
    payment_id: uuid.UUID
    amount_minor: int | None = Field(
        default=None,
        gt=0,
        le=MAX_AMOUNT,
        description="Minor units to refund; default: everything still refundable.",
    )
    reason: str | None = Field(default=None, max_length=500)


class CaptureOut(BaseModel):
    id: uuid.UUID
    amount_minor: int
    status: Literal["pending", "unknown", "succeeded", "failed"] = Field(
        description="`unknown`: the processor did not answer in time; it is being asked."
    )
    created_at: datetime
    completed_at: datetime | None


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    invoice_id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID
    processor: str
    processor_payment_id: str | None
    status: PaymentStatus = Field(
        description="`processing` until the processor's answer is known (also while an "
        "unanswered call is being resolved)."
    )
    capture_method: Literal["automatic", "manual"]
    amount_minor: int
    currency: str
    amount_captured_minor: int
    amount_refunded_minor: int
    amount_capturable_minor: int
    fee_minor: int = Field(
        description="The processor's fees on the captures so far (it keeps them on refunds)."
    )
    payment_method: str
    description: str | None
    failure_code: str | None
    failure_message: str | None
    captures: list[CaptureOut]
    created_at: datetime
    updated_at: datetime


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID
    processor: str
    processor_refund_id: str | None
    status: RefundStatus
    amount_minor: int
    currency: str
    reason: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime


class ProcessorConfigIn(_In):
    enabled: bool = True
    config: dict[str, Any] = Field(
        description="The processor's settings (see its `config_schema`). Secret fields are "
        "write-only: leave one out to keep the stored value."
    )


class ProcessorOut(BaseModel):
    name: str
    title: str
    configured: bool
    enabled: bool
    config: dict[str, Any] = Field(description="Non-secret settings.")
    secrets_set: list[str] = Field(description="Secret fields that hold a value (never shown).")
    config_schema: dict[str, Any]
    webhook_url: str = Field(description="Point the processor's webhooks here.")
    updated_at: datetime | None = None


class ProcessorWebhookAccepted(BaseModel):
    received: bool = True
    duplicate: bool = Field(description="This event id was received before; stored once.")
