"""Fixtures shared by the customers and catalog tests (imported by both conftests)."""

from __future__ import annotations

from typing import Any

import pytest

from customers.support import Seller, make_seller
from tradeflow.catalog import cache
from tradeflow.config import Settings
from tradeflow.db import Database


@pytest.fixture
async def app(app: Any, settings: Settings) -> Any:
    """The shared test app, starting each test with an empty price cache."""
    cache.configure(settings)
    return app


@pytest.fixture
async def seller(rolled_back: Database) -> Seller:
    return await make_seller(rolled_back)


@pytest.fixture
async def other_seller(rolled_back: Database) -> Seller:
    return await make_seller(rolled_back)
