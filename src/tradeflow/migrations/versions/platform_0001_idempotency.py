"""Platform: stored responses for Idempotency-Key.

Revision ID: platform_0001
Revises: base_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "platform_0001"
down_revision = "base_0001"
branch_labels = ("platform",)
depends_on = "identity_0001"


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey(
                "tenants.id", ondelete="CASCADE", name="fk_idempotency_keys_tenant_id_tenants"
            ),
            nullable=False,
        ),
        sa.Column("caller", sa.String(80), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("location", sa.String(512)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "caller", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_index("ix_idempotency_keys_tenant_id", "idempotency_keys", ["tenant_id"])
    enable_tenant_rls("idempotency_keys")
    grant_app("idempotency_keys")


def downgrade() -> None:
    op.drop_table("idempotency_keys")
