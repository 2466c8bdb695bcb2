"""Integrations: a `tenant_id` index on every tenant table, as the shared model mixin declares.

Revision ID: integrations_0003
Revises: integrations_0002
"""

from alembic import op

revision = "integrations_0003"
down_revision = "integrations_0002"
branch_labels = None
depends_on = None

TABLES = (
    "connector_instances",
    "external_refs",
    "sync_conflicts",
    "reconciliation_runs",
    "processor_settlements",
)


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_tenant_id ON {table} (tenant_id)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_tenant_id")
