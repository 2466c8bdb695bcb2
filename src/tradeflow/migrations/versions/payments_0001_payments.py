"""Payments: processor configurations, payments, refunds, processor calls, inbound webhooks.

Revision ID: payments_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "payments_0001"
down_revision = "base_0001"
branch_labels = ("payments",)
depends_on = "identity_0001"

# Invoices, orders and customers belong to other contexts: their ids are stored, not
# foreign-keyed, so each context's schema can evolve (and be split off) on its own.


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE processor_configs (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          processor varchar(60) NOT NULL,
          enabled boolean NOT NULL DEFAULT true,
          settings jsonb NOT NULL DEFAULT '{}',
          secrets text,
          account_ref varchar(200),
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_processor_configs PRIMARY KEY (id),
          CONSTRAINT fk_processor_configs_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_processor_configs_tenant_id_processor UNIQUE (tenant_id, processor)
        )
        """
    )
    # Inbound webhooks name the merchant account; it must lead to exactly one tenant.
    op.execute(
        "CREATE UNIQUE INDEX uq_processor_configs_processor_account_ref "
        "ON processor_configs (processor, account_ref) WHERE account_ref IS NOT NULL"
    )
    enable_tenant_rls("processor_configs")
    grant_app("processor_configs")

    op.execute(
        """
        CREATE TABLE payments (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          invoice_id uuid NOT NULL,
          order_id uuid NOT NULL,
          customer_id uuid NOT NULL,
          processor varchar(60) NOT NULL,
          processor_payment_id varchar(200),
          processor_status varchar(30),
          processor_version integer NOT NULL DEFAULT 0,
          status varchar(30) NOT NULL,
          capture_method varchar(10) NOT NULL,
          amount_minor bigint NOT NULL,
          currency char(3) NOT NULL,
          amount_captured_minor bigint NOT NULL DEFAULT 0,
          amount_refunded_minor bigint NOT NULL DEFAULT 0,
          payment_method varchar(100) NOT NULL,
          description varchar(500),
          failure_code varchar(100),
          failure_message text,
          announced boolean NOT NULL DEFAULT false,
          created_by uuid,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_payments PRIMARY KEY (id),
          CONSTRAINT fk_payments_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT ck_payments_amounts CHECK (
            amount_minor > 0 AND amount_captured_minor >= 0
            AND amount_captured_minor <= amount_minor
            AND amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_captured_minor),
          CONSTRAINT ck_payments_capture_method CHECK (capture_method IN ('automatic', 'manual'))
        )
        """
    )
    op.execute("CREATE INDEX ix_payments_tenant_id_id ON payments (tenant_id, id)")
    op.execute("CREATE INDEX ix_payments_tenant_id_invoice_id ON payments (tenant_id, invoice_id)")
    op.execute(
        "CREATE INDEX ix_payments_tenant_id_customer_id_id ON payments (tenant_id, customer_id, id)"
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_payments_processor_payment_id "
        "ON payments (tenant_id, processor, processor_payment_id) "
        "WHERE processor_payment_id IS NOT NULL"
    )
    enable_tenant_rls("payments")
    grant_app("payments")

    op.execute(
        """
        CREATE TABLE refunds (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          payment_id uuid NOT NULL,
          invoice_id uuid NOT NULL,
          order_id uuid NOT NULL,
          customer_id uuid NOT NULL,
          processor varchar(60) NOT NULL,
          processor_refund_id varchar(200),
          processor_version integer NOT NULL DEFAULT 0,
          status varchar(20) NOT NULL,
          amount_minor bigint NOT NULL,
          currency char(3) NOT NULL,
          reason varchar(500),
          failure_code varchar(100),
          failure_message text,
          created_by uuid,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_refunds PRIMARY KEY (id),
          CONSTRAINT fk_refunds_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_refunds_payment_id_payments FOREIGN KEY (payment_id)
            REFERENCES payments (id) ON DELETE CASCADE,
          CONSTRAINT ck_refunds_amount CHECK (amount_minor > 0),
          CONSTRAINT ck_refunds_status CHECK (status IN ('pending', 'succeeded', 'failed'))
        )
        """
    )
    op.execute("CREATE INDEX ix_refunds_tenant_id_id ON refunds (tenant_id, id)")
    op.execute("CREATE INDEX ix_refunds_payment_id ON refunds (payment_id)")
    op.execute(
        "CREATE UNIQUE INDEX uq_refunds_processor_refund_id "
        "ON refunds (tenant_id, processor, processor_refund_id) "
        "WHERE processor_refund_id IS NOT NULL"
    )
    enable_tenant_rls("refunds")
    grant_app("refunds")

    # Every call that changes something at a processor: written (and committed) before the
    # call, settled after it — or later by the resolver when the outcome was unknown.
    op.execute(
        """
        CREATE TABLE processor_operations (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          payment_id uuid NOT NULL,
          refund_id uuid,
          kind varchar(12) NOT NULL,
          amount_minor bigint NOT NULL,
          status varchar(12) NOT NULL,
          error_code varchar(100),
          error_message text,
          request_caller varchar(80),
          request_key varchar(255),
          request_fingerprint varchar(64),
          checks integer NOT NULL DEFAULT 0,
          next_check_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          completed_at timestamptz,
          CONSTRAINT pk_processor_operations PRIMARY KEY (id),
          CONSTRAINT fk_processor_operations_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_processor_operations_payment_id_payments FOREIGN KEY (payment_id)
            REFERENCES payments (id) ON DELETE CASCADE,
          CONSTRAINT fk_processor_operations_refund_id_refunds FOREIGN KEY (refund_id)
            REFERENCES refunds (id) ON DELETE CASCADE,
          CONSTRAINT ck_processor_operations_kind
            CHECK (kind IN ('authorize', 'capture', 'refund')),
          CONSTRAINT ck_processor_operations_status
            CHECK (status IN ('pending', 'unknown', 'succeeded', 'failed'))
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_processor_operations_request "
        "ON processor_operations (tenant_id, request_caller, request_key) "
        "WHERE request_key IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_processor_operations_open ON processor_operations (created_at) "
        "WHERE status IN ('pending', 'unknown')"
    )
    op.execute(
        "CREATE INDEX ix_processor_operations_payment_id ON processor_operations (payment_id)"
    )
    enable_tenant_rls("processor_operations")
    grant_app("processor_operations")

    op.execute(
        """
        CREATE TABLE processor_webhooks (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          processor varchar(60) NOT NULL,
          external_id varchar(200) NOT NULL,
          event_type varchar(100) NOT NULL,
          object_id varchar(200),
          payload jsonb NOT NULL,
          received_at timestamptz NOT NULL DEFAULT now(),
          deliveries integer NOT NULL DEFAULT 1,
          processed_at timestamptz,
          outcome varchar(30),
          CONSTRAINT pk_processor_webhooks PRIMARY KEY (id),
          CONSTRAINT fk_processor_webhooks_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_processor_webhooks_external
            UNIQUE (tenant_id, processor, external_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_processor_webhooks_tenant_id_id ON processor_webhooks (tenant_id, id)"
    )
    enable_tenant_rls("processor_webhooks")
    grant_app("processor_webhooks", "SELECT, INSERT, UPDATE")


def downgrade() -> None:
    for table in (
        "processor_webhooks",
        "processor_operations",
        "refunds",
        "payments",
        "processor_configs",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
