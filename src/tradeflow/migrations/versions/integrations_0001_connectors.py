"""Integrations: connector instances, external-id map, sync conflicts, reconciliation runs.

Revision ID: integrations_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "integrations_0001"
down_revision = "base_0001"
branch_labels = ("integrations",)
depends_on = "identity_0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE connector_instances (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          kind varchar(60) NOT NULL,
          name varchar(200) NOT NULL,
          config jsonb NOT NULL DEFAULT '{}'::jsonb,
          secrets_ciphertext text,
          enabled boolean NOT NULL DEFAULT true,
          paused boolean NOT NULL DEFAULT false,
          subscriber_id uuid,
          last_error text,
          last_error_at timestamptz,
          last_success_at timestamptz,
          consecutive_failures integer NOT NULL DEFAULT 0,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_connector_instances PRIMARY KEY (id),
          CONSTRAINT fk_connector_instances_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_connector_instances_tenant_id_name UNIQUE (tenant_id, name)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_connector_instances_subscriber_id "
        "ON connector_instances (subscriber_id) WHERE subscriber_id IS NOT NULL"
    )
    enable_tenant_rls("connector_instances")
    grant_app("connector_instances")

    op.execute(
        """
        CREATE TABLE external_refs (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          connector_id uuid NOT NULL,
          object_type varchar(30) NOT NULL,
          our_id varchar(100) NOT NULL,
          external_id varchar(200),
          remote_version varchar(200),
          state varchar(12) NOT NULL DEFAULT 'pending',
          last_ours jsonb,
          last_theirs jsonb,
          pending jsonb,
          attempts integer NOT NULL DEFAULT 0,
          lease_until timestamptz,
          lease_token uuid,
          last_error text,
          synced_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_external_refs PRIMARY KEY (id),
          CONSTRAINT fk_external_refs_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_external_refs_connector_id_connector_instances FOREIGN KEY (connector_id)
            REFERENCES connector_instances (id) ON DELETE CASCADE,
          CONSTRAINT uq_external_refs_connector_object
            UNIQUE (connector_id, object_type, our_id),
          CONSTRAINT ck_external_refs_state
            CHECK (state IN ('pending', 'synced', 'conflict', 'failed'))
        )
        """
    )
    # Their id maps to at most one of ours: a second link is a bug, not a sync.
    op.execute(
        "CREATE UNIQUE INDEX uq_external_refs_connector_external "
        "ON external_refs (connector_id, object_type, external_id) WHERE external_id IS NOT NULL"
    )
    op.execute("CREATE INDEX ix_external_refs_tenant_id_id ON external_refs (tenant_id, id)")
    op.execute(
        "CREATE INDEX ix_external_refs_unsynced ON external_refs (connector_id, updated_at) "
        "WHERE state <> 'synced'"
    )
    enable_tenant_rls("external_refs")
    grant_app("external_refs")

    op.execute(
        """
        CREATE TABLE sync_conflicts (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          connector_id uuid NOT NULL,
          ref_id uuid NOT NULL,
          object_type varchar(30) NOT NULL,
          our_id varchar(100) NOT NULL,
          external_id varchar(200),
          remote_version varchar(200),
          fields jsonb NOT NULL,
          ours jsonb NOT NULL,
          theirs jsonb NOT NULL,
          status varchar(12) NOT NULL DEFAULT 'open',
          resolution varchar(12),
          resolved_values jsonb,
          resolved_by varchar(100),
          resolved_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_sync_conflicts PRIMARY KEY (id),
          CONSTRAINT fk_sync_conflicts_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_sync_conflicts_connector_id_connector_instances FOREIGN KEY (connector_id)
            REFERENCES connector_instances (id) ON DELETE CASCADE,
          CONSTRAINT fk_sync_conflicts_ref_id_external_refs FOREIGN KEY (ref_id)
            REFERENCES external_refs (id) ON DELETE CASCADE,
          CONSTRAINT ck_sync_conflicts_status CHECK (status IN ('open', 'resolving', 'resolved')),
          CONSTRAINT ck_sync_conflicts_resolution
            CHECK (resolution IS NULL OR resolution IN ('ours', 'theirs', 'merge'))
        )
        """
    )
    # At most one unresolved conflict per document: a later clash updates it.
    op.execute(
        "CREATE UNIQUE INDEX uq_sync_conflicts_open_ref ON sync_conflicts (ref_id) "
        "WHERE status <> 'resolved'"
    )
    op.execute(
        "CREATE INDEX ix_sync_conflicts_tenant_id_status_id ON sync_conflicts (tenant_id, status, id)"
    )
    enable_tenant_rls("sync_conflicts")
    grant_app("sync_conflicts")

    op.execute(
        """
        CREATE TABLE reconciliation_runs (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          trigger varchar(12) NOT NULL,
          status varchar(12) NOT NULL DEFAULT 'running',
          started_at timestamptz NOT NULL,
          finished_at timestamptz,
          mismatch_count integer NOT NULL DEFAULT 0,
          counts jsonb NOT NULL DEFAULT '{}'::jsonb,
          checked jsonb NOT NULL DEFAULT '{}'::jsonb,
          error text,
          CONSTRAINT pk_reconciliation_runs PRIMARY KEY (id),
          CONSTRAINT fk_reconciliation_runs_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT ck_reconciliation_runs_status
            CHECK (status IN ('running', 'clean', 'mismatches', 'failed'))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_reconciliation_runs_tenant_id_id ON reconciliation_runs (tenant_id, id)"
    )
    enable_tenant_rls("reconciliation_runs")
    grant_app("reconciliation_runs")

    op.execute(
        """
        CREATE TABLE reconciliation_mismatches (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          run_id uuid NOT NULL,
          kind varchar(60) NOT NULL,
          connector_id uuid,
          object_type varchar(30) NOT NULL,
          object_id varchar(200) NOT NULL,
          detail jsonb NOT NULL DEFAULT '{}'::jsonb,
          CONSTRAINT pk_reconciliation_mismatches PRIMARY KEY (id),
          CONSTRAINT fk_reconciliation_mismatches_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_reconciliation_mismatches_run_id_reconciliation_runs FOREIGN KEY (run_id)
            REFERENCES reconciliation_runs (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_reconciliation_mismatches_run_id_id "
        "ON reconciliation_mismatches (run_id, id)"
    )
    op.execute(
        "CREATE INDEX ix_reconciliation_mismatches_tenant_id ON reconciliation_mismatches (tenant_id)"
    )
    enable_tenant_rls("reconciliation_mismatches")
    grant_app("reconciliation_mismatches")


def downgrade() -> None:
    for table in (
        "reconciliation_mismatches",
        "reconciliation_runs",
        "sync_conflicts",
        "external_refs",
        "connector_instances",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
