"""Orders: tax rates, orders and lines, invoices, the gap-free invoice counter, settlements.

Revision ID: orders_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "orders_0001"
down_revision = "base_0001"
branch_labels = ("orders",)
depends_on = "identity_0001"

_TENANT_FK = "FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE tax_rates (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          code varchar(32) NOT NULL,
          name varchar(200) NOT NULL,
          rate numeric(7, 4) NOT NULL,
          is_default boolean NOT NULL DEFAULT false,
          active boolean NOT NULL DEFAULT true,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_tax_rates PRIMARY KEY (id),
          CONSTRAINT fk_tax_rates_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT uq_tax_rates_tenant_id_code UNIQUE (tenant_id, code),
          CONSTRAINT ck_tax_rates_rate_range CHECK (rate >= 0 AND rate <= 100)
        )
        """
    )
    op.execute("CREATE INDEX ix_tax_rates_tenant_id ON tax_rates (tenant_id)")
    op.execute(
        "CREATE UNIQUE INDEX uq_tax_rates_tenant_id_default ON tax_rates (tenant_id) "
        "WHERE is_default"
    )
    enable_tenant_rls("tax_rates")
    grant_app("tax_rates")

    op.execute(
        f"""
        CREATE TABLE orders (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          customer_id uuid NOT NULL,
          currency char(3) NOT NULL,
          status varchar(20) NOT NULL,
          version integer NOT NULL DEFAULT 1,
          subtotal_minor bigint NOT NULL,
          tax_minor bigint NOT NULL,
          total_minor bigint NOT NULL,
          reference varchar(100),
          notes text,
          placed_by varchar(80) NOT NULL,
          buyer_user_id uuid,
          spending_limit_minor bigint,
          decided_by varchar(80),
          decided_at timestamptz,
          decision_reason text,
          confirmed_at timestamptz,
          paid_at timestamptz,
          fulfilled_at timestamptz,
          cancelled_at timestamptz,
          cancel_reason text,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_orders PRIMARY KEY (id),
          CONSTRAINT fk_orders_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT ck_orders_totals CHECK (
            subtotal_minor >= 0 AND tax_minor >= 0 AND total_minor = subtotal_minor + tax_minor
          ),
          CONSTRAINT ck_orders_status CHECK (status IN (
            'placed', 'pending_approval', 'approved', 'rejected', 'confirmed', 'invoiced',
            'partially_paid', 'paid', 'fulfilled', 'cancelled', 'refunded'
          )),
          CONSTRAINT ck_orders_version CHECK (version >= 1)
        )
        """
    )
    op.execute("CREATE INDEX ix_orders_tenant_id ON orders (tenant_id)")
    op.execute(
        "CREATE INDEX ix_orders_tenant_id_customer_id_id ON orders (tenant_id, customer_id, id)"
    )
    op.execute("CREATE INDEX ix_orders_tenant_id_status_id ON orders (tenant_id, status, id)")
    enable_tenant_rls("orders")
    grant_app("orders", "SELECT, INSERT, UPDATE")

    op.execute(
        f"""
        CREATE TABLE order_lines (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          order_id uuid NOT NULL,
          line_no integer NOT NULL,
          sku varchar(100) NOT NULL,
          sku_id uuid NOT NULL,
          product_id uuid NOT NULL,
          name varchar(300) NOT NULL,
          unit varchar(32) NOT NULL,
          quantity bigint NOT NULL,
          unit_price_minor bigint NOT NULL,
          tax_code varchar(32),
          tax_rate numeric(7, 4) NOT NULL,
          net_minor bigint NOT NULL,
          tax_minor bigint NOT NULL,
          total_minor bigint NOT NULL,
          price_rule jsonb NOT NULL,
          CONSTRAINT pk_order_lines PRIMARY KEY (id),
          CONSTRAINT fk_order_lines_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_order_lines_order_id_orders FOREIGN KEY (order_id)
            REFERENCES orders (id) ON DELETE CASCADE,
          CONSTRAINT uq_order_lines_order_id_line_no UNIQUE (order_id, line_no),
          CONSTRAINT ck_order_lines_amounts CHECK (
            quantity > 0 AND unit_price_minor >= 0 AND net_minor = unit_price_minor * quantity
            AND tax_minor >= 0 AND total_minor = net_minor + tax_minor
          )
        )
        """
    )
    op.execute("CREATE INDEX ix_order_lines_tenant_id ON order_lines (tenant_id)")
    enable_tenant_rls("order_lines")
    grant_app("order_lines", "SELECT, INSERT")

    op.execute(
        f"""
        CREATE TABLE invoices (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          order_id uuid NOT NULL,
          customer_id uuid NOT NULL,
          customer_name varchar(300) NOT NULL,
          number varchar(32) NOT NULL,
          year integer NOT NULL,
          sequence integer NOT NULL,
          currency char(3) NOT NULL,
          subtotal_minor bigint NOT NULL,
          tax_minor bigint NOT NULL,
          total_minor bigint NOT NULL,
          amount_paid_minor bigint NOT NULL DEFAULT 0,
          amount_refunded_minor bigint NOT NULL DEFAULT 0,
          status varchar(20) NOT NULL,
          issued_at timestamptz NOT NULL,
          due_date date NOT NULL,
          payment_terms_days integer NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_invoices PRIMARY KEY (id),
          CONSTRAINT fk_invoices_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_invoices_order_id_orders FOREIGN KEY (order_id)
            REFERENCES orders (id) ON DELETE RESTRICT,
          CONSTRAINT uq_invoices_tenant_id_number UNIQUE (tenant_id, number),
          CONSTRAINT uq_invoices_tenant_id_year_sequence UNIQUE (tenant_id, year, sequence),
          CONSTRAINT uq_invoices_order_id UNIQUE (order_id),
          CONSTRAINT ck_invoices_amounts CHECK (
            total_minor >= 0 AND amount_paid_minor >= 0 AND amount_refunded_minor >= 0
          ),
          CONSTRAINT ck_invoices_status CHECK (status IN (
            'open', 'partially_paid', 'paid', 'refunded', 'void'
          ))
        )
        """
    )
    op.execute("CREATE INDEX ix_invoices_tenant_id ON invoices (tenant_id)")
    op.execute(
        "CREATE INDEX ix_invoices_tenant_id_customer_id_id ON invoices (tenant_id, customer_id, id)"
    )
    # Open receivables per customer, read by the credit check on every confirmation.
    op.execute(
        "CREATE INDEX ix_invoices_open_receivables ON invoices (tenant_id, customer_id) "
        "WHERE status IN ('open', 'partially_paid')"
    )
    enable_tenant_rls("invoices")
    grant_app("invoices", "SELECT, INSERT, UPDATE")

    op.execute(
        f"""
        CREATE TABLE invoice_counters (
          tenant_id uuid NOT NULL,
          year integer NOT NULL,
          last_number integer NOT NULL,
          CONSTRAINT pk_invoice_counters PRIMARY KEY (tenant_id, year),
          CONSTRAINT fk_invoice_counters_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT ck_invoice_counters_positive CHECK (last_number >= 1)
        )
        """
    )
    enable_tenant_rls("invoice_counters")
    grant_app("invoice_counters", "SELECT, INSERT, UPDATE")

    op.execute(
        f"""
        CREATE TABLE invoice_settlements (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          invoice_id uuid NOT NULL,
          event_id uuid NOT NULL,
          kind varchar(20) NOT NULL,
          payment_id uuid,
          amount_minor bigint NOT NULL,
          currency char(3) NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_invoice_settlements PRIMARY KEY (id),
          CONSTRAINT fk_invoice_settlements_tenant_id_tenants {_TENANT_FK},
          CONSTRAINT fk_invoice_settlements_invoice_id_invoices FOREIGN KEY (invoice_id)
            REFERENCES invoices (id) ON DELETE CASCADE,
          CONSTRAINT uq_invoice_settlements_event_id UNIQUE (event_id),
          CONSTRAINT ck_invoice_settlements_kind CHECK (kind IN ('captured', 'failed', 'refunded')),
          CONSTRAINT ck_invoice_settlements_amount CHECK (amount_minor >= 0)
        )
        """
    )
    op.execute("CREATE INDEX ix_invoice_settlements_tenant_id ON invoice_settlements (tenant_id)")
    op.execute("CREATE INDEX ix_invoice_settlements_invoice_id ON invoice_settlements (invoice_id)")
    enable_tenant_rls("invoice_settlements")
    grant_app("invoice_settlements", "SELECT, INSERT")


def downgrade() -> None:
    for table in (
        "invoice_settlements",
        "invoice_counters",
        "invoices",
        "order_lines",
        "orders",
        "tax_rates",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
