"""Orders test fixtures: a seller with a customer, priced SKUs, a default tax rate, staff and
buyer credentials — all made through the contexts' own services, as the application does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orders.factories import World, make_world
from tradeflow.db import Database
from tradeflow.identity import passwords


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    # Production argon2 parameters cost ~0.2 s per hash; buyers log in in many tests.
    old = passwords.hasher()
    passwords.configure_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords.configure_hasher(
        time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
    )


@pytest.fixture
async def world(rolled_back: Database) -> World:
    return await make_world(rolled_back)


@pytest.fixture
async def committed_world(committed: Database) -> World:
    return await make_world(committed)
