"""Identity: a version on tenants and users, for ETag / If-Match on updates.

Revision ID: identity_0003
Revises: identity_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("tenants", "users"):
        op.add_column(
            table, sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1"))
        )


def downgrade() -> None:
    for table in ("tenants", "users"):
        op.drop_column(table, "version")
