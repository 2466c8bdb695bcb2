"""Payments' tables: processor configs, payments, refunds, processor calls, inbound webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.keyring import register_encrypted_column
from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin


class ProcessorConfigRow(IdMixin, TenantMixin, TimestampMixin, Base):
    """A tenant's configuration of one processor; `secrets` is a key-ring ciphertext."""

    __tablename__ = "processor_configs"

    processor: Mapped[str] = mapped_column(String(60))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    account_ref: Mapped[str | None] = mapped_column(String(200))


register_encrypted_column("processor_configs", "secrets")


class Payment(IdMixin, TenantMixin, TimestampMixin, Base):
    """A payment intent for an invoice and what the processor has told us about it."""

    __tablename__ = "payments"

    invoice_id: Mapped[uuid.UUID]
    order_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    processor: Mapped[str] = mapped_column(String(60))
    processor_payment_id: Mapped[str | None] = mapped_column(String(200))
    processor_status: Mapped[str | None] = mapped_column(String(30))
    processor_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(30))
    capture_method: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # The processor's fees on this payment's captures so far (what it keeps; never refunded).
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_method: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    # Whether `payment.intent_created` went out: only once the processor was reached.
    announced: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[uuid.UUID | None]


class Refund(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "refunds"

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    invoice_id: Mapped[uuid.UUID]
    order_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    processor: Mapped[str] = mapped_column(String(60))
    processor_refund_id: Mapped[str | None] = mapped_column(String(200))
    processor_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(500))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None]


class ProcessorOperation(IdMixin, TenantMixin, Base):
    """One call that changes something at the processor, recorded before it is made.

    `pending` while the call runs; `succeeded` / `failed` once we know; `unknown`
    when the call timed out — the resolver then asks the processor. The row id is
    the processor idempotency key's suffix, so a retry could never charge twice.
    """

    __tablename__ = "processor_operations"

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("refunds.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(12))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    request_caller: Mapped[str | None] = mapped_column(String(80))
    request_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    checks: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None]

    @property
    def idempotency_key(self) -> str:
        return f"tradeflow-{self.kind}-{self.id}"


class ProcessorWebhook(IdMixin, TenantMixin, Base):
    """An inbound processor event, stored once by its external id and applied once."""

    __tablename__ = "processor_webhooks"

    processor: Mapped[str] = mapped_column(String(60))
    external_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(30))
