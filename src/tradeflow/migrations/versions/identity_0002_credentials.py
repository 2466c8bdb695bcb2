"""Identity: sessions and refresh tokens, API keys, MFA recovery codes, security events;
the buyer user's customer.

Revision ID: identity_0002
Revises: identity_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
TS = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _user_fk(
    table: str, column: str = "user_id", ondelete: str = "CASCADE"
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{table}_{column}_users", ondelete=ondelete
    )


def upgrade() -> None:
    # Buyer users belong to one customer company; the customers context owns that table
    # and may add the foreign key in its own branch.
    op.add_column("users", sa.Column("customer_id", UUID, nullable=True))
    op.create_index("ix_users_customer_id", "users", ["customer_id"])
    op.create_check_constraint(
        "ck_users_buyer_has_customer", "users", "(kind = 'buyer') = (customer_id IS NOT NULL)"
    )

    op.create_table(
        "recovery_codes",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        _tenant_fk("recovery_codes"),
        _user_fk("recovery_codes"),
    )
    op.create_index("ix_recovery_codes_tenant_id", "recovery_codes", ["tenant_id"])
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])

    op.create_table(
        "auth_sessions",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
        sa.Column("ip", postgresql.INET, nullable=True),
        sa.Column("user_agent", sa.String(400), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_sessions"),
        _tenant_fk("auth_sessions"),
        _user_fk("auth_sessions"),
    )
    op.create_index("ix_auth_sessions_tenant_id", "auth_sessions", ["tenant_id"])
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])

    op.create_table(
        "refresh_tokens",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("session_id", UUID, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        _tenant_fk("refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name="fk_refresh_tokens_session_id_auth_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_tokens_tenant_id", "refresh_tokens", ["tenant_id"])
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(64)), nullable=False),
        sa.Column("created_by", UUID, nullable=True),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        _tenant_fk("api_keys"),
        _user_fk("api_keys", "created_by", "SET NULL"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_index("ix_api_keys_created_by", "api_keys", ["created_by"])

    op.create_table(
        "security_events",
        sa.Column("id", UUID, nullable=False),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("user_id", UUID, nullable=True),
        sa.Column("actor_id", UUID, nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=True),
        sa.Column("ip", postgresql.INET, nullable=True),
        sa.Column(
            "details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
        _tenant_fk("security_events"),
    )
    op.create_index("ix_security_events_tenant_id", "security_events", ["tenant_id"])
    op.create_index("ix_security_events_kind", "security_events", ["kind"])
    op.create_index("ix_security_events_tenant_id_id", "security_events", ["tenant_id", "id"])

    for table in ("recovery_codes", "auth_sessions", "refresh_tokens", "api_keys"):
        enable_tenant_rls(table)
        grant_app(table)
    # Security events are append-only for the application: no UPDATE or DELETE.
    enable_tenant_rls("security_events")
    grant_app("security_events", "SELECT, INSERT")


def downgrade() -> None:
    for table in (
        "security_events",
        "api_keys",
        "refresh_tokens",
        "auth_sessions",
        "recovery_codes",
    ):
        op.drop_table(table)
    op.drop_constraint("ck_users_buyer_has_customer", "users")
    op.drop_index("ix_users_customer_id", "users")
    op.drop_column("users", "customer_id")
