"""Fixtures for the sandbox processor's own tests: one sandbox process per test worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from payments.support import sandbox_process
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


@pytest.fixture(scope="session")
def sandbox_proc(server_url: str, worker_id: str) -> Iterator[SandboxProcess]:
    with sandbox_process(server_url, worker_id) as process:
        yield process


@pytest.fixture
async def control(sandbox_proc: SandboxProcess) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_proc.control_url) as ctl:
        yield ctl
        if (await ctl.status())["down"]:  # a failed test must not leave the API down
            await ctl.up()


@pytest.fixture
async def account(control: SandboxControl) -> dict[str, Any]:
    return await control.create_account(webhook_url=None)


@pytest.fixture
async def api(
    sandbox_proc: SandboxProcess, account: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sandbox_proc.api_url,
        headers={"authorization": f"Bearer {account['api_key']}"},
        timeout=10,
    ) as client:
        yield client
