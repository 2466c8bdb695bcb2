"""Payments test fixtures: the sandbox processor (a child process per test worker), a seller
world with priced SKUs (the orders tests' factories), and a connected sandbox account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from httpx import AsyncClient

from orders.factories import World, make_world
from payments.factories import Merchant, connect_sandbox
from payments.support import sandbox_process
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.identity import passwords
from tradeflow.kit.keyring import Keyring
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    # Production argon2 parameters cost ~0.2 s a hash; buyers log in in some tests.
    old = passwords.hasher()
    passwords.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords.configure_hasher(
        time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
    )


@pytest.fixture(scope="session")
def sandbox_proc(server_url: str, worker_id: str) -> Iterator[SandboxProcess]:
    with sandbox_process(server_url, worker_id) as process:
        yield process


@pytest.fixture
async def sandbox(sandbox_proc: SandboxProcess) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_proc.control_url) as control:
        yield control
        if (await control.status())["down"]:  # a failed test must not leave the API down
            await control.up()


@pytest.fixture(scope="session")
def payments_app(settings: Settings, db: Database, keyring: Keyring) -> Any:
    """One app for the whole session: FastAPI builds its routes on an app's first request,
    which costs more than most of these tests. `db` is the same object `rolled_back` binds
    to each test's outer transaction, so the app sees each test's data and nothing else."""
    return create_app(settings, db, keyring=keyring)


@pytest.fixture
async def app(payments_app: Any, rolled_back: Database) -> Any:
    return payments_app


@pytest.fixture
async def world(rolled_back: Database) -> World:
    return await make_world(rolled_back)


@pytest.fixture
async def merchant(
    client: AsyncClient, world: World, sandbox_proc: SandboxProcess, sandbox: SandboxControl
) -> Merchant:
    """The world's tenant with a fresh sandbox account enabled (webhooks not sent)."""
    return await connect_sandbox(client, world, sandbox_proc, sandbox)
