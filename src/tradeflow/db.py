"""Database: the embedded or external PostgreSQL, engines and sessions.

Two kinds of session exist, and the difference is the whole tenancy story:

* a **tenant session** runs every transaction as the application role
  (`settings.db_app_role`) with `app.tenant_id` set, so PostgreSQL's
  row-level security hides every other tenant's rows even if a query forgets
  its filter;
* a **system session** runs as the connecting (owner) role and sees every
  tenant. Only credential resolution (login, API key and refresh token
  look-up, before a tenant is known), the worker and the CLI use it.

Both set their role with `SET LOCAL`-style `set_config(..., true)` at the
start of each transaction, so a pooled connection never carries one
request's identity into the next.
"""

from __future__ import annotations

import contextlib
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from tradeflow.config import Settings

log = structlog.get_logger(__name__)


class EmbeddedPostgres:
    """A private PostgreSQL from the `pgserver` wheel, data under `$TRADEFLOW_HOME/pgdata`.

    pgserver counts handles across processes, so `tradeflow api` and
    `tradeflow worker` started against the same home share one server, and
    the last one out stops it.
    """

    def __init__(self, home: Path) -> None:
        self.pgdata = (home / "pgdata").resolve()
        self._server: Any = None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime folder; without XDG_RUNTIME_DIR
            # (services, containers) it falls back to /tmp and warns on every start.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            from pgserver.postgres_server import get_server

            self._server = get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded_postgres_started", pgdata=str(self.pgdata))
        return uri

    @property
    def server(self) -> Any:
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded_postgres_stopped", pgdata=str(self.pgdata))


def _with_driver(url: str, driver: str) -> URL:
    parsed = make_url(url)
    return parsed.set(drivername=f"postgresql+{driver}")


def async_url(url: str) -> URL:
    """The hot path's driver (asyncpg; see docs/adr/0002-async-driver.md)."""
    return _with_driver(url, "asyncpg")


def sync_url(url: str) -> URL:
    """psycopg 3 for synchronous work: Alembic, the CLI, test set-up."""
    return _with_driver(url, "psycopg")


@dataclass
class Database:
    """Engines and session factories for one database URL."""

    url: str
    app_role: str | None = "tradeflow_app"
    pool_size: int = 10
    max_overflow: int = 10
    engine: AsyncEngine = field(init=False)
    _sessions: async_sessionmaker[AsyncSession] = field(init=False)
    bind: AsyncConnection | None = None  # tests bind every session to one connection

    def __post_init__(self) -> None:
        self.engine = create_async_engine(
            async_url(self.url),
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            pool_recycle=1800,
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        _install_pool_metrics(self.engine)
        _install_idle_ping(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings, url: str) -> Database:
        return cls(
            url=url,
            app_role=settings.db_app_role or None,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )

    def _new_session(self) -> AsyncSession:
        if self.bind is not None:
            return AsyncSession(
                bind=self.bind,
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
        return self._sessions()

    @contextlib.asynccontextmanager
    async def tenant_session(self, tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """A session whose transactions are confined to one tenant by RLS.

        The caller (request dependency or unit of work) commits; on error the
        transaction rolls back and nothing is half-written.
        """
        async with self._new_session() as session:
            await enter_tenant(session, tenant_id, app_role=self.app_role)
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    @contextlib.asynccontextmanager
    async def system_session(self) -> AsyncIterator[AsyncSession]:
        """A session that sees every tenant (owner role). Use sparingly."""
        async with self._new_session() as session:
            await enter_system(session)
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()


async def enter_tenant(
    session: AsyncSession, tenant_id: uuid.UUID, *, app_role: str | None
) -> None:
    """Start the transaction as the RLS-bound role for `tenant_id`.

    Every request pays for this, so it is one plain statement in one trip through
    SQLAlchemy's greenlet bridge, which also remembers the driver connection for the
    transaction (see `driver_connection`).
    """
    await session.run_sync(_enter_tenant, app_role or "none", str(tenant_id))


_ENTER_TENANT = "SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true)"


def _enter_tenant(session: Session, role: str, tenant_id: str) -> None:
    connection = session.connection()
    adapted: Any = connection.connection.dbapi_connection
    driver: Any = connection.connection.driver_connection
    start = getattr(adapted, "_start_transaction", None)
    if start is None or not hasattr(adapted, "_transaction"):  # not SQLAlchemy's asyncpg adapter
        connection.exec_driver_sql(_ENTER_TENANT, (role, tenant_id))
    else:
        # Straight on the driver: SQLAlchemy's execution context (cursor, result, events) cost
        # ≈ 0.1 ms of CPU per request here, for a statement whose result nobody reads. The
        # adapter's own BEGIN comes first, so the driver and SQLAlchemy agree that a
        # transaction is open, and the session commits or rolls it back as usual.
        if adapted._transaction is None:
            await_only(start())
        await_only(driver.fetchval(_ENTER_TENANT, role, tenant_id))
    session.info[_DRIVER] = (session.get_transaction(), driver)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's current transaction.

    For the few hot paths that send plain SQL (`$1` parameters) to skip SQLAlchemy's
    per-statement work: the statements run inside the session's transaction (and its
    tenant settings), and the session still commits or rolls back. The transaction must
    have begun through the session first (`tenant_session` / `system_session` do that).
    On the application's engine JSON and JSONB arrive as text and are sent as text.
    """
    # Remembered per transaction: each look-up is two trips through SQLAlchemy's greenlet
    # bridge, which costs more than a plain statement on the driver.
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if transaction is not None and cached is not None and cached[0] is transaction:
        return cached[1]
    driver = await session.run_sync(_driver_of)  # one trip through the bridge, not two
    session.info[_DRIVER] = (session.sync_session.get_transaction(), driver)
    return driver


def _driver_of(session: Session) -> Any:
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy opens the driver's transaction with its first statement: open it now,
        # or plain statements would run outside it (each committing on its own).
        connection.exec_driver_sql("SELECT 1")
    return driver


_DRIVER = "tradeflow.driver_connection"


async def enter_system(session: AsyncSession) -> None:
    await session.execute(
        text("SELECT set_config('role', 'none', true), set_config('app.tenant_id', '', true)")
    )


# A pooled connection idle at least this long is pinged before it is handed out, so a
# restarted server or a dropped link is noticed there. A busy connection is not: SQLAlchemy's
# `pool_pre_ping` would cost every request three round trips (BEGIN, ping, ROLLBACK on
# asyncpg). One that breaks while busy fails its own transaction, and SQLAlchemy then
# replaces every pooled connection of that age.
PING_AFTER_IDLE_SECONDS = 1.0


def _install_idle_ping(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _idle_from(_: object, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _: object) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # the pool retries the checkout with a new connection
            raise DisconnectionError("a pooled connection failed its ping") from exc


def _install_pool_metrics(engine: AsyncEngine) -> None:
    from tradeflow.observability.metrics import DB_POOL_CHECKED_OUT, DB_POOL_CONNECTIONS

    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(*_: object) -> None:
        DB_POOL_CONNECTIONS.inc()

    @event.listens_for(sync_engine, "close")
    def _on_close(*_: object) -> None:
        DB_POOL_CONNECTIONS.dec()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(*_: object) -> None:
        DB_POOL_CHECKED_OUT.inc()

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(*_: object) -> None:
        DB_POOL_CHECKED_OUT.dec()
