"""Fixtures for the events tests."""

from __future__ import annotations

import uuid

import pytest

from events.support import FAST, make_tenant
from tradeflow.config import Settings
from tradeflow.db import Database


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
async def tenant(committed: Database) -> uuid.UUID:
    return await make_tenant(committed)
