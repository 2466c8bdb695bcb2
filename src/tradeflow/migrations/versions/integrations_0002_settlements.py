"""Integrations: processor settlements from payment events; queued reconciliation runs.

Revision ID: integrations_0002
Revises: integrations_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "integrations_0002"
down_revision = "integrations_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE processor_settlements (
          tenant_id uuid NOT NULL,
          payment_id varchar(100) NOT NULL,
          currency char(3) NOT NULL,
          captured_minor bigint NOT NULL DEFAULT 0,
          refunded_minor bigint NOT NULL DEFAULT 0,
          first_at timestamptz NOT NULL,
          last_at timestamptz NOT NULL,
          CONSTRAINT pk_processor_settlements PRIMARY KEY (tenant_id, payment_id),
          CONSTRAINT fk_processor_settlements_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT ck_processor_settlements_amounts
            CHECK (captured_minor >= 0 AND refunded_minor >= 0)
        )
        """
    )
    enable_tenant_rls("processor_settlements")
    grant_app("processor_settlements")

    # `POST /v1/reconciliations` queues a run; the worker runs it (remote calls never happen in
    # the request's transaction, and a queued run survives a restart).
    op.execute("ALTER TABLE reconciliation_runs DROP CONSTRAINT ck_reconciliation_runs_status")
    op.execute(
        "ALTER TABLE reconciliation_runs ADD CONSTRAINT ck_reconciliation_runs_status "
        "CHECK (status IN ('queued', 'running', 'clean', 'mismatches', 'failed'))"
    )
    op.execute(
        "ALTER TABLE reconciliation_runs ADD COLUMN grace_seconds double precision NOT NULL DEFAULT 0"
    )
    op.execute(
        "CREATE INDEX ix_reconciliation_runs_queued ON reconciliation_runs (started_at) "
        "WHERE status IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_reconciliation_runs_queued")
    op.execute("ALTER TABLE reconciliation_runs DROP COLUMN IF EXISTS grace_seconds")
    op.execute("DELETE FROM reconciliation_runs WHERE status = 'queued'")
    op.execute("ALTER TABLE reconciliation_runs DROP CONSTRAINT ck_reconciliation_runs_status")
    op.execute(
        "ALTER TABLE reconciliation_runs ADD CONSTRAINT ck_reconciliation_runs_status "
        "CHECK (status IN ('running', 'clean', 'mismatches', 'failed'))"
    )
    op.execute("DROP TABLE IF EXISTS processor_settlements CASCADE")
