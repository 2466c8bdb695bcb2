"""Webhooks: outbound endpoints (one `subscribers` row each) with encrypted signing secrets.

Revision ID: webhooks_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "webhooks_0001"
down_revision = "base_0001"
branch_labels = ("webhooks",)
depends_on = "events_0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_endpoints (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          url varchar(2000) NOT NULL,
          description varchar(500) NOT NULL DEFAULT '',
          secret_ciphertext text NOT NULL,
          previous_secret_ciphertext text,
          previous_secret_expires_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_webhook_endpoints PRIMARY KEY (id),
          CONSTRAINT fk_webhook_endpoints_id_subscribers FOREIGN KEY (id)
            REFERENCES subscribers (id) ON DELETE CASCADE,
          CONSTRAINT fk_webhook_endpoints_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_webhook_endpoints_tenant_id_id ON webhook_endpoints (tenant_id, id)"
    )
    enable_tenant_rls("webhook_endpoints")
    grant_app("webhook_endpoints", "SELECT, INSERT, UPDATE, DELETE")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS webhook_endpoints CASCADE")
