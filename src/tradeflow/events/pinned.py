"""A system session on one connection a worker loop keeps, for its hot path.

The delivery loop and the completion writer each run a short transaction many
times a second. Checking a pooled connection out for each, and entering the
system role at the start of each transaction, cost as much CPU (in the worker
and in PostgreSQL) as the statements themselves. A pinned connection enters
the system role once, at session level, and is reused until an error — after
which it is dropped and the next use connects afresh (a database restart, a
killed backend).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tradeflow.db import Database


class PinnedSession:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None
        # One transaction at a time on the connection (shutdown may flush while the
        # writer task is still finishing its own flush).
        self._lock = asyncio.Lock()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = await self._db.engine.connect()
            try:
                # What a system session sets per transaction, once for the connection;
                # and a fresh plan for every execution of the engine's statements. Left
                # to itself, PostgreSQL switches a prepared statement to a generic plan
                # after five runs when that looks no costlier — judged on the
                # statistics of those runs. A worker started on an empty queue then keeps
                # plans made for an empty deliveries table through the backlog that
                # follows: bench/delivery.py saw the drain fall from ~2,300 to ~500
                # events/s in about half its runs. Planning costs well under a
                # millisecond per batch.
                await conn.execute(
                    text(
                        "SELECT set_config('role', 'none', false), "
                        "set_config('app.tenant_id', '', false), "
                        "set_config('plan_cache_mode', 'force_custom_plan', false)"
                    )
                )
                await conn.commit()
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the pinned connection; the caller commits (else it rolls back)."""
        if self._db.bind is not None:
            # Tests that bind every session to one connection: use theirs.
            async with self._db.system_session() as session:
                yield session
            return
        async with self._lock:
            conn = await self._connection()
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                yield session
            except BaseException:
                await self._drop(session)
                raise
            await session.close()

    async def _drop(self, session: AsyncSession) -> None:
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            await session.close()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
