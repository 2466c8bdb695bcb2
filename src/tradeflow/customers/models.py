"""The customers context's tables: customer groups, customer companies, buyer profiles.

A buyer user is an identity `users` row (`kind = 'buyer'`, a buyer role and a
`customer_id`); what the customers context adds is the buyer's standing in the
company — the role that decides who approves orders, and the spending limit.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin


class CustomerGroup(IdMixin, TenantMixin, TimestampMixin, Base):
    """Customers priced alike: a group has price lists and an optional discount on base prices."""

    __tablename__ = "customer_groups"
    __table_args__ = (
        Index(
            "uq_customer_groups_tenant_id_name", "tenant_id", func.lower(text("name")), unique=True
        ),
        CheckConstraint("discount_percent >= 0 AND discount_percent <= 100", name="discount_range"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="", default="")
    discount_percent: Mapped[Decimal] = mapped_column(
        Numeric(5, 2), server_default=text("0"), default=Decimal(0)
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)


class Customer(IdMixin, TenantMixin, TimestampMixin, Base):
    """A customer company of the seller."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_tenant_id_id", "tenant_id", "id"),
        Index("ix_customers_tenant_id_lower_name", "tenant_id", func.lower(text("name"))),
        CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="payment_terms_range"),
        CheckConstraint(
            "credit_limit_minor IS NULL OR credit_limit_minor >= 0", name="credit_limit_range"
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
    )

    name: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str | None] = mapped_column(String(64))
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    currency: Mapped[str] = mapped_column(String(3))
    payment_terms_days: Mapped[int] = mapped_column(Integer, server_default=text("30"))
    # None: no credit limit is enforced.
    credit_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)


class BuyerProfile(TenantMixin, TimestampMixin, Base):
    """A buyer user's standing in their company: role (who approves) and spending limit."""

    __tablename__ = "buyer_profiles"
    __table_args__ = (
        CheckConstraint(
            "spending_limit_minor IS NULL OR spending_limit_minor >= 0",
            name="spending_limit_range",
        ),
        CheckConstraint("role IN ('buyer', 'approver', 'buyer-admin')", name="role"),
        Index("ix_buyer_profiles_customer_id_role", "customer_id", "role"),
    )

    # The identity user (FK to `users` in the migration; models stay in their context).
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    # The login e-mail, copied at creation (identity never changes it) so lists need no join.
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))
    # None: no limit, orders never wait for approval on this buyer's account.
    spending_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
