"""CommerceML connector: 1C exchange sessions, uploaded files, the exchange audit, order changes
and their acknowledgements per instance.

Revision ID: commerceml_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "commerceml_0001"
down_revision = "base_0001"
branch_labels = ("commerceml",)
depends_on = "integrations_0001"

_TENANT_FK = "FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE"
_CONNECTOR_FK = "FOREIGN KEY (connector_id) REFERENCES connector_instances (id) ON DELETE CASCADE"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE commerceml_sessions (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          connector_id uuid NOT NULL,
          token_hash varchar(64) NOT NULL,
          exchange_type varchar(10) NOT NULL,
          created_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL,
          CONSTRAINT pk_commerceml_sessions PRIMARY KEY (id),
          CONSTRAINT fk_commerceml_sessions_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_commerceml_sessions_connector_id_connector_instances {_CONNECTOR_FK}
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_commerceml_sessions_token_hash ON commerceml_sessions (token_hash)"
    )
    op.execute(
        "CREATE INDEX ix_commerceml_sessions_connector_id ON commerceml_sessions (connector_id)"
    )
    op.execute("CREATE INDEX ix_commerceml_sessions_tenant_id ON commerceml_sessions (tenant_id)")

    op.execute(
        f"""
        CREATE TABLE commerceml_uploads (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          session_id uuid NOT NULL,
          filename varchar(300) NOT NULL,
          seq integer NOT NULL,
          data bytea NOT NULL,
          created_at timestamptz NOT NULL,
          CONSTRAINT pk_commerceml_uploads PRIMARY KEY (id),
          CONSTRAINT fk_commerceml_uploads_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_commerceml_uploads_session_id_commerceml_sessions
            FOREIGN KEY (session_id) REFERENCES commerceml_sessions (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_commerceml_uploads_session_id_filename "
        "ON commerceml_uploads (session_id, filename, seq)"
    )
    op.execute("CREATE INDEX ix_commerceml_uploads_tenant_id ON commerceml_uploads (tenant_id)")

    op.execute(
        f"""
        CREATE TABLE commerceml_exchanges (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          connector_id uuid NOT NULL,
          session_id uuid,
          exchange_type varchar(10) NOT NULL,
          mode varchar(10) NOT NULL,
          source varchar(10) NOT NULL,
          filename varchar(300),
          size_bytes bigint NOT NULL DEFAULT 0,
          sha256 varchar(64),
          status varchar(12) NOT NULL,
          counts jsonb NOT NULL DEFAULT '{{}}'::jsonb,
          problems jsonb NOT NULL DEFAULT '[]'::jsonb,
          orders jsonb NOT NULL DEFAULT '[]'::jsonb,
          error text,
          started_at timestamptz NOT NULL,
          finished_at timestamptz,
          CONSTRAINT pk_commerceml_exchanges PRIMARY KEY (id),
          CONSTRAINT fk_commerceml_exchanges_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_commerceml_exchanges_connector_id_connector_instances {_CONNECTOR_FK}
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_commerceml_exchanges_tenant_id_connector_id_id "
        "ON commerceml_exchanges (tenant_id, connector_id, id)"
    )
    op.execute(
        "CREATE INDEX ix_commerceml_exchanges_connector_id ON commerceml_exchanges (connector_id)"
    )
    op.execute("CREATE INDEX ix_commerceml_exchanges_tenant_id ON commerceml_exchanges (tenant_id)")

    op.execute(
        f"""
        CREATE TABLE commerceml_order_changes (
          tenant_id uuid NOT NULL,
          order_id uuid NOT NULL,
          version integer NOT NULL,
          status varchar(20) NOT NULL,
          changed_at timestamptz NOT NULL,
          CONSTRAINT pk_commerceml_order_changes PRIMARY KEY (tenant_id, order_id),
          CONSTRAINT fk_commerceml_order_changes_tenant_id_tenants {_TENANT_FK}
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_commerceml_order_changes_tenant_id_changed_at "
        "ON commerceml_order_changes (tenant_id, changed_at)"
    )
    op.execute(
        "CREATE INDEX ix_commerceml_order_changes_tenant_id ON commerceml_order_changes (tenant_id)"
    )

    op.execute(
        f"""
        CREATE TABLE commerceml_order_acks (
          tenant_id uuid NOT NULL,
          connector_id uuid NOT NULL,
          order_id uuid NOT NULL,
          version integer NOT NULL,
          acked_at timestamptz NOT NULL,
          CONSTRAINT pk_commerceml_order_acks PRIMARY KEY (connector_id, order_id),
          CONSTRAINT fk_commerceml_order_acks_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_commerceml_order_acks_connector_id_connector_instances {_CONNECTOR_FK}
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_commerceml_order_acks_tenant_id ON commerceml_order_acks (tenant_id)"
    )

    for table in (
        "commerceml_sessions",
        "commerceml_uploads",
        "commerceml_exchanges",
        "commerceml_order_changes",
        "commerceml_order_acks",
    ):
        enable_tenant_rls(table)
        grant_app(table)


def downgrade() -> None:
    for table in (
        "commerceml_order_acks",
        "commerceml_order_changes",
        "commerceml_exchanges",
        "commerceml_uploads",
        "commerceml_sessions",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
