"""Events: mark the deliveries that head their (subscriber, aggregate) stream as ready.

The claim then walks ready deliveries only, instead of stepping over every
delivery that waits behind an earlier one of its aggregate (a cost that grew
with the backlog). Completions queue their (subscriber, aggregate) in
`delivery_promotions`; the dispatcher marks the next pending delivery ready.

Revision ID: events_0002
Revises: events_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "events_0002"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE deliveries ADD COLUMN ready boolean NOT NULL DEFAULT false")
    # Existing pending rows: all ready; the claim's order check still holds them in order.
    op.execute("UPDATE deliveries SET ready = true WHERE status = 'pending'")
    op.execute("DROP INDEX ix_deliveries_due")
    op.execute(
        "CREATE INDEX ix_deliveries_due ON deliveries (subscriber_id, next_attempt_at) "
        "WHERE status = 'pending' AND ready"
    )
    op.execute(
        """
        CREATE TABLE delivery_promotions (
          id bigint GENERATED ALWAYS AS IDENTITY,
          tenant_id uuid NOT NULL,
          subscriber_id uuid NOT NULL,
          aggregate varchar(170) NOT NULL,
          CONSTRAINT pk_delivery_promotions PRIMARY KEY (id)
        )
        """
    )
    enable_tenant_rls("delivery_promotions")
    grant_app("delivery_promotions", "SELECT, INSERT")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS delivery_promotions")
    op.execute("DROP INDEX ix_deliveries_due")
    op.execute(
        "CREATE INDEX ix_deliveries_due ON deliveries (subscriber_id, next_attempt_at) "
        "WHERE status = 'pending'"
    )
    op.execute("ALTER TABLE deliveries DROP COLUMN ready")
