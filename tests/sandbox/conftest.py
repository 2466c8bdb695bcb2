"""Fixtures for the sandbox processor's own tests: one sandbox process per test worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
