"""Test fixtures: a real PostgreSQL, one database per xdist worker, a rolled-back transaction.

The server is the embedded one (pgserver) under a temp folder shared by all
workers, or the server named by `TRADEFLOW_TEST_DATABASE_URL`. Each worker
creates its own database, migrates it once, and drops it at the end.
"""

from __future__ import annotations

import base64
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tradeflow.app import create_app
from tradeflow.config import Settings, load_settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.migrations import upgrade

TEST_MASTER_KEY = base64.b64encode(b"\x07" * 32).decode()
# Production argon2id costs ~0.2 s per hash; the suite creates hundreds of users.
TEST_HASH_PARAMS = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    from tradeflow.identity import passwords

    old = passwords.hasher()
    passwords.configure_hasher(**TEST_HASH_PARAMS)
    yield
    passwords.configure_hasher(
        time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
    )


def _server_url() -> Iterator[str]:
    external = os.environ.get("TRADEFLOW_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    pgdata = Path(tempfile.gettempdir()) / "tradeflow-test-pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _admin(url: str) -> psycopg.Connection[Any]:
    u = make_url(url)
    return psycopg.connect(
        dbname=u.database or "postgres",
        user=u.username,
        password=u.password,
        host=u.query.get("host", u.host) if u.query else u.host,  # type: ignore[arg-type]
        port=u.port,
        autocommit=True,
    )


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    yield from _server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str, worker_id: str) -> Iterator[str]:
    name = f"tftest_{worker_id}_{uuid.uuid4().hex[:8]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        with _admin(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def home_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tradeflow-test-home-") as home:
        yield Path(home)


@pytest.fixture(scope="session")
def settings(database_url: str, home_folder: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        home=home_folder,
        master_key=f"t1:{TEST_MASTER_KEY}",
        ratelimit_default="100000/minute",
        ratelimit_auth="100000/minute",
        webhooks_allow_private=True,
        log_format="console",
    )


@pytest.fixture(scope="session")
def keyring(settings: Settings) -> Keyring:
    from tradeflow.kit.keyring import load_keyring

    return load_keyring(settings)


@pytest.fixture(scope="session")
async def db(settings: Settings, database_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(settings, database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def rolled_back(db: Database) -> AsyncIterator[Database]:
    """Every session in the test joins one outer transaction that is rolled back afterwards."""
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        db.bind = conn
        try:
            yield db
        finally:
            db.bind = None
            await outer.rollback()


@pytest.fixture
async def committed(db: Database) -> AsyncIterator[Database]:
    """Real commits (concurrency tests, subprocesses); every table is emptied afterwards."""
    yield db
    async with db.engine.begin() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        if tables:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))


def make_app(settings: Settings, db: Database, keyring: Keyring) -> Any:
    return create_app(settings, db, keyring=keyring)


@pytest.fixture(scope="session")
def shared_app(settings: Settings, db: Database, keyring: Keyring) -> Any:
    """One app per test worker: building the routes costs more than most tests."""
    return make_app(settings, db, keyring)


@pytest.fixture
async def app(shared_app: Any, rolled_back: Database) -> AsyncIterator[Any]:
    """The shared app on this test's rolled-back transaction; `app.state` restored afterwards."""
    assert shared_app.state.db is rolled_back
    saved = dict(shared_app.state._state)
    try:
        yield shared_app
    finally:
        shared_app.state._state.clear()
        shared_app.state._state.update(saved)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
