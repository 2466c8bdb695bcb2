"""Payments: processor fees per payment; voiding expired authorisations.

Revision ID: payments_0002
Revises: payments_0001
"""

from alembic import op

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # What the processor kept of the captured money, summed over the payment's captures.
    op.execute(
        "ALTER TABLE payments ADD COLUMN fee_minor bigint NOT NULL DEFAULT 0, "
        "ADD CONSTRAINT ck_payments_fee CHECK (fee_minor >= 0)"
    )
    op.execute("ALTER TABLE processor_operations DROP CONSTRAINT ck_processor_operations_kind")
    op.execute(
        "ALTER TABLE processor_operations ADD CONSTRAINT ck_processor_operations_kind "
        "CHECK (kind IN ('authorize', 'capture', 'refund', 'void'))"
    )
    # The expiry job's scan: authorisations nothing has been captured from, oldest first.
    op.execute(
        "CREATE INDEX ix_payments_uncaptured_authorizations ON payments (created_at) "
        "WHERE capture_method = 'manual' AND status = 'requires_capture'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_payments_uncaptured_authorizations")
    op.execute("DELETE FROM processor_operations WHERE kind = 'void'")
    op.execute("ALTER TABLE processor_operations DROP CONSTRAINT ck_processor_operations_kind")
    op.execute(
        "ALTER TABLE processor_operations ADD CONSTRAINT ck_processor_operations_kind "
        "CHECK (kind IN ('authorize', 'capture', 'refund'))"
    )
    op.execute("ALTER TABLE payments DROP CONSTRAINT ck_payments_fee, DROP COLUMN fee_minor")
