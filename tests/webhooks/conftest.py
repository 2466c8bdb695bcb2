"""Fixtures for the webhooks tests (the sink and helpers live in tests/events)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from events.sink import Sink
from events.support import FAST, make_tenant
from tradeflow.config import Settings
from tradeflow.db import Database


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
async def tenant(committed: Database) -> uuid.UUID:
    return await make_tenant(committed)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()
