from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.ratelimit import RateLimiter


async def _app(settings: Settings, db: Database, keyring: Keyring, limit: str) -> FastAPI:
    app = create_app(settings, db, keyring=keyring)

    @app.get("/limited-probe")
    async def probe(request: Request) -> dict[str, Any]:
        await request.app.state.ratelimiter.check(
            request, policy="probe", limit=limit, key=f"ip:{request.client.host}"
        )
        return {"ok": True}

    return app


async def test_headers_then_429_with_retry_after(
    settings: Settings, rolled_back: Database, keyring: Keyring
) -> None:
    app = await _app(settings, rolled_back, keyring, "3/minute")
    async with AsyncClient(
        transport=ASGITransport(app=app, client=("10.1.2.3", 1)), base_url="http://t"
    ) as c:
        for remaining in (2, 1, 0):
            r = await c.get("/limited-probe")
            assert r.status_code == 200
            assert r.headers["ratelimit-policy"] == '"probe";q=3;w=60'
            assert r.headers["ratelimit"].startswith(f'"probe";r={remaining};t=')
        r = await c.get("/limited-probe")
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["type"].endswith("/rate-limited")
        assert "probe" in r.json()["detail"]


async def test_limits_are_per_key(settings: Settings) -> None:
    limiter = RateLimiter(settings)
    assert (await limiter.consume("p", "1/minute", "a"))[0]
    assert not (await limiter.consume("p", "1/minute", "a"))[0]
    assert (await limiter.consume("p", "1/minute", "b"))[0]
    assert await limiter.exhausted("p", "1/minute", "a")
    await limiter.clear("p", "1/minute", "a")
    assert not await limiter.exhausted("p", "1/minute", "a")
