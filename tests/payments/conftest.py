"""Payments test fixtures: the sandbox processor (a child process per test worker), a seller
world with priced SKUs (the orders tests' factories), and a connected sandbox account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from httpx import AsyncClient

from orders.factories import World, make_world
from payments.factories import Merchant, connect_sandbox
from payments.support import sandbox_process
from tradeflow.db import Database
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


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


@pytest.fixture
async def world(rolled_back: Database) -> World:
    return await make_world(rolled_back)


@pytest.fixture
async def merchant(
    client: AsyncClient, world: World, sandbox_proc: SandboxProcess, sandbox: SandboxControl
) -> Merchant:
    """The world's tenant with a fresh sandbox account enabled (webhooks not sent)."""
    return await connect_sandbox(client, world, sandbox_proc, sandbox)
