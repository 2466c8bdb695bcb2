"""Integrations: the pull side of connectors (cursor, schedule, lease, last outcome).

Revision ID: integrations_0004
Revises: integrations_0003
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "integrations_0004"
down_revision = "integrations_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE connector_pulls (
          connector_id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          cursor text,
          next_pull_at timestamptz,
          requested_at timestamptz,
          running_until timestamptz,
          running_token uuid,
          last_started_at timestamptz,
          last_finished_at timestamptz,
          last_success_at timestamptz,
          last_error text,
          last_error_at timestamptz,
          consecutive_failures integer NOT NULL,
          last_counts jsonb NOT NULL,
          totals jsonb NOT NULL,
          problems jsonb NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_connector_pulls PRIMARY KEY (connector_id),
          CONSTRAINT fk_connector_pulls_connector_id_connector_instances
            FOREIGN KEY (connector_id) REFERENCES connector_instances (id) ON DELETE CASCADE,
          CONSTRAINT fk_connector_pulls_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    op.execute("CREATE INDEX ix_connector_pulls_tenant_id ON connector_pulls (tenant_id)")
    op.execute("CREATE INDEX ix_connector_pulls_next_pull_at ON connector_pulls (next_pull_at)")
    enable_tenant_rls("connector_pulls")
    grant_app("connector_pulls")


def downgrade() -> None:
    op.execute("DROP TABLE connector_pulls")
