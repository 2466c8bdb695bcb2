"""Identity test fixtures: cheap argon2 parameters, an app without login delays, factories."""

from __future__ import annotations

from typing import Any

import pytest

from tradeflow.identity.sessions import LoginPolicy

# Test login policy: the real lockout thresholds, no progressive delay (tested on its own).
TEST_POLICY = LoginPolicy(max_failures=5, lockout_seconds=900, ip_max_failures=50, delay_after=1000)


@pytest.fixture
async def app(app: Any) -> Any:
    """The shared test app (state restored by the root fixture) without login delays."""
    app.state.login_policy = TEST_POLICY
    return app
