"""Customers: customer groups, customer companies, buyer profiles; buyer users' customer FK.

Revision ID: customers_0001
Revises: base_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "customers_0001"
down_revision = "base_0001"
branch_labels = ("customers",)
depends_on = ("identity_0002",)

UUID = postgresql.UUID(as_uuid=True)
TS = sa.DateTime(timezone=True)


def _timestamps() -> list[Any]:
    return [
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    ]


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "customer_groups",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "discount_percent", sa.Numeric(5, 2), nullable=False, server_default=sa.text("0")
        ),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_customer_groups"),
        _tenant_fk("customer_groups"),
        sa.CheckConstraint(
            "discount_percent >= 0 AND discount_percent <= 100",
            name="ck_customer_groups_discount_range",
        ),
    )
    op.create_index("ix_customer_groups_tenant_id", "customer_groups", ["tenant_id"])
    op.create_index(
        "uq_customer_groups_tenant_id_name",
        "customer_groups",
        ["tenant_id", sa.text("lower(name)")],
        unique=True,
    )

    op.create_table(
        "customers",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tax_id", sa.String(64), nullable=True),
        sa.Column("billing_address", postgresql.JSONB, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_terms_days", sa.Integer, nullable=False, server_default=sa.text("30")),
        sa.Column("credit_limit_minor", sa.BigInteger, nullable=True),
        sa.Column("group_id", UUID, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        _tenant_fk("customers"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name="fk_customers_group_id_customer_groups",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "payment_terms_days BETWEEN 0 AND 365", name="ck_customers_payment_terms_range"
        ),
        sa.CheckConstraint(
            "credit_limit_minor IS NULL OR credit_limit_minor >= 0",
            name="ck_customers_credit_limit_range",
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_customers_currency_code"),
    )
    op.create_index("ix_customers_tenant_id", "customers", ["tenant_id"])
    op.create_index("ix_customers_tenant_id_id", "customers", ["tenant_id", "id"])
    op.create_index(
        "ix_customers_tenant_id_lower_name", "customers", ["tenant_id", sa.text("lower(name)")]
    )
    op.create_index("ix_customers_group_id", "customers", ["group_id"])

    op.create_table(
        "buyer_profiles",
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("spending_limit_minor", sa.BigInteger, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("user_id", name="pk_buyer_profiles"),
        _tenant_fk("buyer_profiles"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_buyer_profiles_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_buyer_profiles_customer_id_customers",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "spending_limit_minor IS NULL OR spending_limit_minor >= 0",
            name="ck_buyer_profiles_spending_limit_range",
        ),
        sa.CheckConstraint(
            "role IN ('buyer', 'approver', 'buyer-admin')", name="ck_buyer_profiles_role"
        ),
    )
    op.create_index("ix_buyer_profiles_tenant_id", "buyer_profiles", ["tenant_id"])
    op.create_index("ix_buyer_profiles_customer_id_role", "buyer_profiles", ["customer_id", "role"])

    # Buyer users point at their company (identity's column, this context's table).
    op.create_foreign_key(
        "fk_users_customer_id_customers",
        "users",
        "customers",
        ["customer_id"],
        ["id"],
        ondelete="RESTRICT",
    )

    for table in ("customer_groups", "customers", "buyer_profiles"):
        enable_tenant_rls(table)
        grant_app(table)


def downgrade() -> None:
    op.drop_constraint("fk_users_customer_id_customers", "users", type_="foreignkey")
    for table in ("buyer_profiles", "customers", "customer_groups"):
        op.drop_table(table)
