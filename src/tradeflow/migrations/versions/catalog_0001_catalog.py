"""Catalog: products, SKUs, product images, price lists and tiers, contract prices,
the per-tenant pricing version.

Revision ID: catalog_0001
Revises: base_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "catalog_0001"
down_revision = "base_0001"
branch_labels = ("catalog",)
depends_on = ("customers_0001",)

UUID = postgresql.UUID(as_uuid=True)
TS = sa.DateTime(timezone=True)
JSON_OBJECT = sa.text("'{}'::jsonb")


def _common(table: str) -> list[Any]:
    return [
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "products",
        *_common("products"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("attributes", postgresql.JSONB, nullable=False, server_default=JSON_OBJECT),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.create_index("ix_products_tenant_id", "products", ["tenant_id"])
    op.create_index("ix_products_tenant_id_id", "products", ["tenant_id", "id"])

    op.create_table(
        "skus",
        *_common("skus"),
        sa.Column("product_id", UUID, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False, server_default="each"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("attributes", postgresql.JSONB, nullable=False, server_default=JSON_OBJECT),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name="fk_skus_product_id_products", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("tenant_id", "code", name="uq_skus_tenant_id_code"),
    )
    op.create_index("ix_skus_tenant_id", "skus", ["tenant_id"])
    op.create_index("ix_skus_tenant_id_id", "skus", ["tenant_id", "id"])
    op.create_index("ix_skus_product_id", "skus", ["product_id"])

    op.create_table(
        "product_images",
        *_common("product_images"),
        sa.Column("product_id", UUID, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(50), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(300), nullable=False),
        sa.Column("alt_text", sa.String(300), nullable=False, server_default=""),
        sa.Column("status", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("thumbnails", postgresql.JSONB, nullable=False, server_default=JSON_OBJECT),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name="fk_product_images_product_id_products",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'failed')", name="ck_product_images_status"
        ),
    )
    op.create_index("ix_product_images_tenant_id", "product_images", ["tenant_id"])
    op.create_index("ix_product_images_product_id_id", "product_images", ["product_id", "id"])

    op.create_table(
        "price_lists",
        *_common("price_lists"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("customer_group_id", UUID, nullable=True),
        sa.Column("valid_from", TS, nullable=True),
        sa.Column("valid_to", TS, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.ForeignKeyConstraint(
            ["customer_group_id"],
            ["customer_groups.id"],
            name="fk_price_lists_customer_group_id_customer_groups",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to",
            name="ck_price_lists_window",
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_price_lists_currency_code"),
    )
    op.create_index("ix_price_lists_tenant_id", "price_lists", ["tenant_id"])
    op.create_index("ix_price_lists_customer_group_id", "price_lists", ["customer_group_id"])
    op.create_index(
        "ix_price_lists_tenant_id_currency_group",
        "price_lists",
        ["tenant_id", "currency", "customer_group_id"],
    )

    op.create_table(
        "price_list_entries",
        *_common("price_list_entries"),
        sa.Column("price_list_id", UUID, nullable=False),
        sa.Column("sku_id", UUID, nullable=False),
        sa.Column("min_quantity", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["price_list_id"],
            ["price_lists.id"],
            name="fk_price_list_entries_price_list_id_price_lists",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name="fk_price_list_entries_sku_id_skus", ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "price_list_id", "sku_id", "min_quantity", name="uq_price_list_entries_tier"
        ),
        sa.CheckConstraint("min_quantity >= 1", name="ck_price_list_entries_min_quantity"),
        sa.CheckConstraint("unit_price_minor >= 0", name="ck_price_list_entries_unit_price"),
    )
    op.create_index("ix_price_list_entries_tenant_id", "price_list_entries", ["tenant_id"])
    op.create_index("ix_price_list_entries_sku_id", "price_list_entries", ["sku_id"])

    op.create_table(
        "contract_prices",
        *_common("contract_prices"),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("sku_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("min_quantity", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.Column("valid_from", TS, nullable=True),
        sa.Column("valid_to", TS, nullable=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_contract_prices_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name="fk_contract_prices_sku_id_skus", ondelete="CASCADE"
        ),
        sa.CheckConstraint("min_quantity >= 1", name="ck_contract_prices_min_quantity"),
        sa.CheckConstraint("unit_price_minor >= 0", name="ck_contract_prices_unit_price"),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to",
            name="ck_contract_prices_window",
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_contract_prices_currency_code"),
    )
    op.create_index("ix_contract_prices_tenant_id", "contract_prices", ["tenant_id"])
    op.create_index(
        "ix_contract_prices_customer_id_sku_id", "contract_prices", ["customer_id", "sku_id"]
    )
    op.create_index("ix_contract_prices_sku_id", "contract_prices", ["sku_id"])

    op.create_table(
        "pricing_versions",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_pricing_versions"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_pricing_versions_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )

    for table in (
        "products",
        "skus",
        "product_images",
        "price_lists",
        "price_list_entries",
        "contract_prices",
    ):
        enable_tenant_rls(table)
        grant_app(table)
    enable_tenant_rls("pricing_versions")
    grant_app("pricing_versions", "SELECT, INSERT, UPDATE")


def downgrade() -> None:
    for table in (
        "pricing_versions",
        "contract_prices",
        "price_list_entries",
        "price_lists",
        "product_images",
        "skus",
        "products",
    ):
        op.drop_table(table)
