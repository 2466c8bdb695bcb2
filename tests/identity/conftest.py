"""Identity test fixtures: cheap argon2 parameters, an app without login delays, factories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.identity import passwords
from tradeflow.identity.sessions import LoginPolicy
from tradeflow.kit.keyring import Keyring

# The production parameters cost ~0.2 s per hash; tests hash hundreds of times.
TEST_HASH_PARAMS = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
# Test login policy: the real lockout thresholds, no progressive delay (tested on its own).
TEST_POLICY = LoginPolicy(max_failures=5, lockout_seconds=900, ip_max_failures=50, delay_after=1000)


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    old = passwords.hasher()
    passwords.configure_hasher(**TEST_HASH_PARAMS)
    yield
    passwords.configure_hasher(
        time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
    )


@pytest.fixture
async def app(settings: Settings, rolled_back: Database, keyring: Keyring) -> Any:
    from tradeflow.app import create_app

    application = create_app(settings, rolled_back, keyring=keyring)
    application.state.login_policy = TEST_POLICY
    return application
