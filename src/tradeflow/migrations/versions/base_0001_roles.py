"""Base: the application role that row-level security applies to.

Revision ID: base_0001
Revises:
"""

from alembic import op

from tradeflow.migrations.helpers import app_role

revision = "base_0001"
down_revision = None
branch_labels = ("base",)
depends_on = None


def upgrade() -> None:
    role = app_role()
    # Roles are cluster-wide: create once, tolerate an existing one (several
    # databases on one server, e.g. one per test worker).
    # The role name is validated by settings (a plain identifier).
    create_role = f"""
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
          END IF;
        END $$;
        """  # noqa: S608
    op.execute(create_role)
    op.execute(f"GRANT {role} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}"
    )


def downgrade() -> None:
    role = app_role()
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
