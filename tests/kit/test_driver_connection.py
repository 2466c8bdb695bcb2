"""`db.driver_connection`: plain driver statements run inside the session's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tradeflow.db import Database, driver_connection


async def _count(db: Database) -> int:
    async with db.system_session() as s:
        return int((await s.execute(text("SELECT count(*) FROM drv_probe"))).scalar_one())


async def test_driver_statements_commit_and_roll_back_with_the_session(
    committed: Database,
) -> None:
    async with committed.system_session() as s:
        await s.execute(text("CREATE TABLE IF NOT EXISTS drv_probe (n int)"))
        await s.commit()
    try:
        async with committed.system_session() as s:
            await (await driver_connection(s)).execute("INSERT INTO drv_probe VALUES (1)")
            await s.rollback()
            # A new transaction that no SQLAlchemy statement has opened yet: still joined.
            await (await driver_connection(s)).execute("INSERT INTO drv_probe VALUES (2)")
            assert await _count(committed) == 0  # not committed on its own
            await s.rollback()
        assert await _count(committed) == 0
        async with committed.system_session() as s:
            await (await driver_connection(s)).execute("INSERT INTO drv_probe VALUES (3)")
            await s.commit()
        assert await _count(committed) == 1
    finally:
        async with committed.system_session() as s:
            await s.execute(text("DROP TABLE IF EXISTS drv_probe"))
            await s.commit()


async def test_driver_statements_run_as_the_tenant(rolled_back: Database) -> None:
    tenant_id = uuid.uuid4()
    async with rolled_back.tenant_session(tenant_id) as s:
        conn = await driver_connection(s)
        row = await conn.fetchrow(
            "SELECT current_setting('app.tenant_id'), current_user, session_user"
        )
        assert row[0] == str(tenant_id)
        assert row[1] == rolled_back.app_role != row[2]
        assert await driver_connection(s) is conn  # remembered for the transaction


async def test_a_tenant_sessions_settings_live_exactly_as_long_as_its_transaction(
    committed: Database,
) -> None:
    tenant_id = uuid.uuid4()
    for end in ("commit", "rollback"):
        async with committed.tenant_session(tenant_id) as s:
            # Set on the driver, seen by SQLAlchemy's statements: one transaction.
            row = (
                await s.execute(
                    text("SELECT current_setting('app.tenant_id'), current_user, txid_current()")
                )
            ).one()
            assert row[0] == str(tenant_id)
            assert row[1] == committed.app_role
            assert await (await driver_connection(s)).fetchval("SELECT txid_current()") == row[2]
            await getattr(s, end)()
            # The next transaction (and whoever gets the pooled connection) starts clean.
            after = (
                await s.execute(
                    text(
                        "SELECT coalesce(current_setting('app.tenant_id', true), ''),"
                        " current_user = session_user"
                    )
                )
            ).one()
            assert after[0] == ""
            assert after[1] is True
