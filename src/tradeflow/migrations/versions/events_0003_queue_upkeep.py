"""Events: one index fewer on deliveries; autovacuum tuned for the queue tables.

`ix_deliveries_event_id` repeated the leading column of the unique
(event_id, subscriber_id) constraint, which serves every look-up by event; each
delivery paid for it twice (on dispatch and on completion, neither update being
HOT).

The dispatcher and the claim walk partial indexes of work still to do, and every
finished item leaves a dead entry there until a vacuum removes it. With the
default thresholds (20 % of the table) a large deliveries table collects millions
of them, and the planner works from statistics taken before the last burst.
Vacuum and analyse these tables after 2 % of them changed, and the promotion
queue (rows live for milliseconds) every thousand rows.

Revision ID: events_0003
Revises: events_0002
"""

from alembic import op

revision = "events_0003"
down_revision = "events_0002"
branch_labels = None
depends_on = None

_QUEUE_TABLES = ("events", "deliveries")


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_deliveries_event_id")
    for table in _QUEUE_TABLES:
        op.execute(
            f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_analyze_scale_factor = 0.02)"
        )
    op.execute(
        "ALTER TABLE delivery_promotions SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 1000)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE delivery_promotions RESET (autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_threshold)"
    )
    for table in _QUEUE_TABLES:
        op.execute(
            f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_analyze_scale_factor)"
        )
    op.execute("CREATE INDEX ix_deliveries_event_id ON deliveries (event_id)")
