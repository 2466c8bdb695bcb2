"""The identity schema: models match the migration, and RLS confines tenant sessions."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text

from schema_support import assert_models_match_migrations
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
    tables = {
        "tenants",
        "users",
        "recovery_codes",
        "auth_sessions",
        "refresh_tokens",
        "api_keys",
        "security_events",
    }
    assert_models_match_migrations(database_url, tables, foreign_fks_are_theirs=True)
