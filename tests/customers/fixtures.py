"""Fixtures shared by the customers and catalog tests (imported by both conftests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import make_app
from customers.support import Seller, make_seller
from tradeflow.catalog import cache
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.identity import passwords
from tradeflow.kit.keyring import Keyring

_APPS: dict[tuple[int, int, int], Any] = {}


@pytest.fixture
async def app(settings: Settings, rolled_back: Database, keyring: Keyring) -> Any:
    """One app per test session: building one costs ~1 s of FastAPI route analysis.

    Sharing is safe here: `rolled_back` is the same `Database` object in every
    test (each test binds it to its own rolled-back connection), tenants keep
    the tests apart, and each test starts with an empty price cache.
    """
    key = (id(settings), id(rolled_back), id(keyring))
    if key not in _APPS:
        _APPS[key] = make_app(settings, rolled_back, keyring)
    cache.configure(settings)
    return _APPS[key]


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    # Production argon2 parameters cost ~0.2 s a hash; buyers are created in many tests.
    old = passwords.hasher()
    passwords.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords.configure_hasher(
        time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
    )


@pytest.fixture
async def seller(rolled_back: Database) -> Seller:
    return await make_seller(rolled_back)


@pytest.fixture
async def other_seller(rolled_back: Database) -> Seller:
    return await make_seller(rolled_back)
