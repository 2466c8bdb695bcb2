"""Ledger test fixtures: a tenant in a rolled-back transaction, books checked at the end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from ledger.support import check_deferred_constraints, make_tenant
from tradeflow.db import Database


@pytest.fixture
async def books(rolled_back: Database) -> AsyncIterator[Database]:
    """`rolled_back`, plus the database's balance check run before the rollback.

    The balance trigger is deferred to COMMIT, which a rolled-back test never reaches;
    firing it at teardown makes every test here prove its entries would commit.
    """
    yield rolled_back
    await check_deferred_constraints(rolled_back)


@pytest.fixture
async def tenant(books: Database) -> uuid.UUID:
    return await make_tenant(books)
