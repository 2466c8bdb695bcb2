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

# How the engine's statements are planned on a pinned connection (see `_connection`).
PLANNER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


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
                # What a system session sets per transaction, once for the connection.
                # And how the engine's statements are planned: once per connection (a
                # generic plan — planning a dispatch cost about a millisecond, a tenth
                # of the database's CPU per delivery at 2,000 events/s), never by
                # walking a whole table. Left to itself, PostgreSQL picks between custom
                # and generic plans on the statistics of the first runs; a worker
                # started on an empty queue kept plans that scan deliveries through the
                # backlog that followed, and bench/delivery.py's drain fell from ~2,300
                # to ~500 events/s in half its runs. Every statement run here has an
                # index for each table it reads (a test checks the plans).
                settings = {"role": "none", "app.tenant_id": "", **PLANNER_SETTINGS}
                await conn.execute(
                    text(
                        "SELECT set_config(name, value, false) "
                        "FROM unnest(CAST(:names AS text[]), CAST(:values AS text[])) "
                        "AS s(name, value)"
                    ),
                    {"names": list(settings), "values": list(settings.values())},
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
