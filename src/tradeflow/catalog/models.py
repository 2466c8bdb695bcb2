"""The catalog context's tables.

Products group SKUs (the things that are ordered, by code); images belong to a
product. Prices live in price lists (per currency, for one customer group or
for everyone — the base list), whose entries are quantity tiers per SKU, and in
contract prices for one customer. `pricing_versions` holds one counter per
tenant that every price-affecting change bumps in its own transaction: it is
part of every price-cache key, so no process can serve a price older than the
last committed change.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin

JSON_OBJECT = text("'{}'::jsonb")


class Product(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_tenant_id_id", "tenant_id", "id"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="", default="")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=JSON_OBJECT, default=dict
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)


class Sku(IdMixin, TenantMixin, TimestampMixin, Base):
    """A stock-keeping unit: what an order line names by `code`."""

    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", name="uq_skus_tenant_id_code"),
        Index("ix_skus_tenant_id_id", "tenant_id", "id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(20), server_default="each", default="each")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=JSON_OBJECT, default=dict
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)


class ProductImage(IdMixin, TenantMixin, TimestampMixin, Base):
    """An uploaded product image; the worker makes its thumbnails (pending → ready or failed)."""

    __tablename__ = "product_images"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'ready', 'failed')", name="status"),
        Index("ix_product_images_product_id_id", "product_id", "id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(50))
    format: Mapped[str] = mapped_column(String(10))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    alt_text: Mapped[str] = mapped_column(String(300), server_default="", default="")
    status: Mapped[str] = mapped_column(String(10), server_default="pending", default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    # {"256": {"key": "...", "width": 256, "height": 192}, ...} once ready.
    thumbnails: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=JSON_OBJECT, default=dict
    )


class PriceList(IdMixin, TenantMixin, TimestampMixin, Base):
    """Prices in one currency for one customer group — or, without a group, the base prices."""

    __tablename__ = "price_lists"
    __table_args__ = (
        CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to", name="window"
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index(
            "ix_price_lists_tenant_id_currency_group", "tenant_id", "currency", "customer_group_id"
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    # None: the base price list of its currency, for every customer. (The foreign key to
    # the customers context's table lives in the migration only: models stay in-context.)
    customer_group_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    valid_from: Mapped[datetime | None] = mapped_column()  # inclusive; None: since always
    valid_to: Mapped[datetime | None] = mapped_column()  # exclusive; None: open-ended
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)


class PriceListEntry(IdMixin, TenantMixin, TimestampMixin, Base):
    """One quantity tier of one SKU in a price list: from `min_quantity` units, this unit price."""

    __tablename__ = "price_list_entries"
    __table_args__ = (
        UniqueConstraint(
            "price_list_id", "sku_id", "min_quantity", name="uq_price_list_entries_tier"
        ),
        CheckConstraint("min_quantity >= 1", name="min_quantity"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price"),
        Index("ix_price_list_entries_sku_id", "sku_id"),
    )

    price_list_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("price_lists.id", ondelete="CASCADE")
    )
    sku_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    min_quantity: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)


class ContractPrice(IdMixin, TenantMixin, TimestampMixin, Base):
    """A price agreed with one customer for one SKU, optionally from a quantity and in a window."""

    __tablename__ = "contract_prices"
    __table_args__ = (
        CheckConstraint("min_quantity >= 1", name="min_quantity"),
        CheckConstraint("unit_price_minor >= 0", name="unit_price"),
        CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to", name="window"
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index("ix_contract_prices_customer_id_sku_id", "customer_id", "sku_id"),
        Index("ix_contract_prices_sku_id", "sku_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column()  # FK to customers in the migration
    sku_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    min_quantity: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None] = mapped_column()
    valid_to: Mapped[datetime | None] = mapped_column()
    note: Mapped[str] = mapped_column(String(500), server_default="", default="")


class PricingVersion(Base):
    """Per-tenant counter of price-affecting changes; part of every price-cache key."""

    __tablename__ = "pricing_versions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
