"""CommerceML: an import of a large file runs in steps (1C's `progress` answers).

Revision ID: commerceml_0002
Revises: commerceml_0001
"""

from alembic import op

revision = "commerceml_0002"
down_revision = "commerceml_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE commerceml_exchanges ADD COLUMN position integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE commerceml_exchanges DROP COLUMN position")
