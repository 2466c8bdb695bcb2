"""Orders test fixtures: a seller with a customer, priced SKUs, a default tax rate, staff and
buyer credentials — all made through the contexts' own services, as the application does."""

from __future__ import annotations

import pytest

from orders.factories import World, make_world
from tradeflow.db import Database


@pytest.fixture
async def world(rolled_back: Database) -> World:
    return await make_world(rolled_back)


@pytest.fixture
async def committed_world(committed: Database) -> World:
    return await make_world(committed)
