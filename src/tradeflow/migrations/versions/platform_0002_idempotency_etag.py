"""Platform: a stored response keeps its ETag, so a replay carries the original's.

Revision ID: platform_0002
Revises: platform_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "platform_0002"
down_revision = "platform_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("etag", sa.String(64)))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "etag")
