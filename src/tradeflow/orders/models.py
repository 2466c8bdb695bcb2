"""Orders' tables: orders and their priced lines, tax rates, invoices, the invoice counter,
and the payment facts applied to invoices.

`customer_id`, `sku_id` and `product_id` point into other contexts; they carry no foreign
key on purpose (contexts never reach into each other's tables) and are checked through
those contexts' services when an order is placed.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin


class TaxRate(IdMixin, TenantMixin, TimestampMixin, Base):
    """A tax rate of the seller, in percent (e.g. 20.0000); at most one is the default."""

    __tablename__ = "tax_rates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index(
            "uq_tax_rates_tenant_id_default",
            "tenant_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
        CheckConstraint("rate >= 0 AND rate <= 100", name="rate_range"),
    )

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)


class Order(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_tenant_id_customer_id_id", "tenant_id", "customer_id", "id"),
        Index("ix_orders_tenant_id_status_id", "tenant_id", "status", "id"),
        CheckConstraint(
            "subtotal_minor >= 0 AND tax_minor >= 0 AND total_minor = subtotal_minor + tax_minor",
            name="totals",
        ),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    # Who placed it: "user:<id>" or "api_key:<id>", and the buyer user when a buyer did.
    placed_by: Mapped[str] = mapped_column(String(80))
    buyer_user_id: Mapped[uuid.UUID | None] = mapped_column()
    spending_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    fulfilled_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancel_reason: Mapped[str | None] = mapped_column(Text)


class OrderLine(IdMixin, TenantMixin, Base):
    """One priced line, frozen when the order is placed: later price changes never touch it."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no"),
        CheckConstraint(
            "quantity > 0 AND unit_price_minor >= 0 AND net_minor = unit_price_minor * quantity "
            "AND tax_minor >= 0 AND total_minor = net_minor + tax_minor",
            name="amounts",
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(100))
    sku_id: Mapped[uuid.UUID] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(300))
    unit: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    tax_code: Mapped[str | None] = mapped_column(String(32))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    net_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    # The pricing rule that won (kind, id, name, detail), as the quote explained it.
    price_rule: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Invoice(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "year", "sequence"),
        UniqueConstraint("order_id"),
        Index("ix_invoices_tenant_id_customer_id_id", "tenant_id", "customer_id", "id"),
        CheckConstraint(
            "total_minor >= 0 AND amount_paid_minor >= 0 AND amount_refunded_minor >= 0",
            name="amounts",
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    customer_id: Mapped[uuid.UUID] = mapped_column()
    customer_name: Mapped[str] = mapped_column(String(300))
    number: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), default=0)
    amount_refunded_minor: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0
    )
    status: Mapped[str] = mapped_column(String(20))
    issued_at: Mapped[datetime] = mapped_column()
    due_date: Mapped[date] = mapped_column(Date)
    payment_terms_days: Mapped[int] = mapped_column(Integer)


class InvoiceCounter(TenantMixin, Base):
    """The last invoice number handed out per tenant and year.

    Incremented in the confirming transaction, so the row lock serialises confirmations of
    one tenant-year and a rolled-back confirmation gives its number back: no gaps, no repeats.
    """

    __tablename__ = "invoice_counters"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "year"),)

    year: Mapped[int] = mapped_column(Integer)
    last_number: Mapped[int] = mapped_column(Integer)


class InvoiceSettlement(IdMixin, TenantMixin, Base):
    """A payment fact applied to an invoice, once per source event (the handlers' ledger)."""

    __tablename__ = "invoice_settlements"
    __table_args__ = (UniqueConstraint("event_id"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
