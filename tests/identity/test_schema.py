"""The identity schema: models match the migration, and RLS confines tenant sessions."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text

from tradeflow.db import Database
from tradeflow.identity.models import Tenant, User


async def test_tenant_session_sees_only_its_tenant_and_users(rolled_back: Database) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    async with rolled_back.system_session() as s:
        s.add_all(
            [
                Tenant(id=a, name="A", slug=f"a-{a.hex[:8]}"),
                Tenant(id=b, name="B", slug=f"b-{b.hex[:8]}"),
            ]
        )
        await s.flush()
        s.add_all(
            [
                User(tenant_id=a, email="x@a.test", password_hash="h", role="owner"),
                User(tenant_id=b, email="x@b.test", password_hash="h", role="owner"),
            ]
        )
        await s.commit()
    async with rolled_back.tenant_session(a) as s:
        tenants = (await s.execute(text("SELECT id FROM tenants"))).scalars().all()
        users = (await s.execute(select(User.email))).scalars().all()
    assert tenants == [a]
    assert users == ["x@a.test"]


def test_models_match_the_migrations(database_url: str) -> None:
    """Autogenerate finds nothing to change in identity's tables: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from tradeflow.db import sync_url
    from tradeflow.identity import models
    from tradeflow.kit.models import Base

    tables = {
        "tenants",
        "users",
        "recovery_codes",
        "auth_sessions",
        "refresh_tokens",
        "api_keys",
        "security_events",
    }
    assert {t for t in Base.metadata.tables if t in tables} == tables, models.__name__

    def include(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if type_ == "table":
            return name in tables
        table = getattr(obj, "table", None)
        return table is None or table.name in tables

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_object": include, "compare_type": True}
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    # Other contexts may point identity's columns at their tables (users.customer_id →
    # customers.id, added by the customers branch); those constraints are theirs.
    foreign = [d for d in diff if d[0] == "remove_fk" and d[1].referred_table.name not in tables]
    assert [d for d in diff if d not in foreign] == []
