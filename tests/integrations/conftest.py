"""Fixtures for the integrations tests: the fake ERP (a separate process), tenants, connectors."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.fake_erp.server import FakeErp, start_fake_erp
from integrations.support import FAST, make_tenant
from payments.support import sandbox_process
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.sandbox.process import SandboxProcess


@pytest.fixture(scope="session")
def erp() -> Iterator[FakeErp]:
    with tempfile.TemporaryDirectory(prefix="tradeflow-fake-erp-") as folder:
        server = start_fake_erp(Path(folder))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def calm_erp(erp: FakeErp) -> Iterator[FakeErp]:
    """The fake ERP with flakiness off before and after the test."""
    erp.calm()
    try:
        yield erp
    finally:
        erp.calm()


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture(scope="session")
def sandbox_proc(server_url: str, worker_id: str) -> Iterator[SandboxProcess]:
    """The in-tree sandbox payment processor, a child process with its own database."""
    with sandbox_process(server_url, worker_id) as process:
        yield process


@pytest.fixture
async def tenant(committed: Database) -> uuid.UUID:
    return await make_tenant(committed)
