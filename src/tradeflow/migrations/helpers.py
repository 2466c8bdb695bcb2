"""Shared DDL for revisions: the tenant row-level-security policy, the app role's grants."""

from __future__ import annotations

from alembic import op

TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def app_role() -> str:
    role = op.get_context().config.attributes.get("app_role", "tradeflow_app")  # type: ignore[union-attr]
    return str(role)


def enable_tenant_rls(table: str, *, column: str = "tenant_id") -> None:
    """Confine `table` to the current tenant for the app role (the second wall behind the repository)."""
    predicate = TENANT_PREDICATE.replace("tenant_id", column, 1)
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
    )


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"GRANT {privileges} ON {table} TO {app_role()}")
