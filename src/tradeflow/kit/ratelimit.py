"""Rate limiting with the `limits` library: in memory by default, shared through Redis.

Callers are counted per API key, per user and per client IP under named
policies (`default`, `auth`, …). Every counted request carries the IETF
rate-limit headers (draft-ietf-httpapi-ratelimit-headers):

    RateLimit-Policy: "default";q=600;w=60
    RateLimit: "default";r=599;t=60

and an exceeded limit answers 429 problem+json with `Retry-After`.
The sliding-window-counter strategy keeps one or two counters per key, so
it is cheap in Redis and close to a true moving window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradeflow.config import Settings
from tradeflow.errors import TooManyRequests
from tradeflow.observability.metrics import RATE_LIMITED

STATE_KEY = "ratelimits"


@dataclass(frozen=True, slots=True)
class RateState:
    policy: str
    quota: int
    window_seconds: int
    remaining: int
    reset_seconds: int

    def policy_header(self) -> str:
        return f'"{self.policy}";q={self.quota};w={self.window_seconds}'

    def state_header(self) -> str:
        return f'"{self.policy}";r={self.remaining};t={self.reset_seconds}'


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.ratelimit_enabled
        uri = "async+" + settings.redis_url if settings.redis_url else "async+memory://"
        self.storage = storage_from_string(uri)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, limit: str) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)
        return item

    async def consume(
        self, policy: str, limit: str, key: str, cost: int = 1
    ) -> tuple[bool, RateState]:
        """Count `cost` hits for `key`; returns (allowed, state) without raising."""
        item = self._item(limit)
        allowed = await self.strategy.hit(item, policy, key, cost=cost)
        stats = await self.strategy.get_window_stats(item, policy, key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        state = RateState(
            policy=policy,
            quota=item.amount,
            window_seconds=item.get_expiry(),
            remaining=max(0, stats.remaining),
            reset_seconds=reset,
        )
        return allowed, state

    async def exhausted(self, policy: str, limit: str, key: str) -> bool:
        """Whether `key` has no hits left, without counting one."""
        return not await self.strategy.test(self._item(limit), policy, key)

    async def clear(self, policy: str, limit: str, key: str) -> None:
        await self.strategy.clear(self._item(limit), policy, key)

    async def check(self, request: Request, *, policy: str, limit: str, key: str) -> None:
        """Count one request; raise 429 when over the limit. Headers go on the response."""
        if not self.enabled:
            return
        allowed, state = await self.consume(policy, limit, key)
        states: list[RateState] = request.scope.setdefault("state", {}).setdefault(STATE_KEY, [])
        states[:] = [s for s in states if s.policy != policy] + [state]
        if not allowed:
            RATE_LIMITED.labels(policy).inc()
            retry_after = max(1, state.reset_seconds)
            raise TooManyRequests(
                f"Rate limit '{policy}' ({limit}) exceeded; retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after), **rate_headers(states)},
                policy=policy,
            )


def rate_headers(states: list[RateState]) -> dict[str, str]:
    if not states:
        return {}
    return {
        "RateLimit-Policy": ", ".join(s.policy_header() for s in states),
        "RateLimit": ", ".join(s.state_header() for s in states),
    }


def client_ip(request: Request) -> str:
    """The peer address. Behind a proxy, run uvicorn with --proxy-headers so this is the client."""
    return request.client.host if request.client else "unknown"


class RateLimitHeadersMiddleware:
    """Adds `RateLimit` / `RateLimit-Policy` to responses of requests that were counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                states = scope.get("state", {}).get(STATE_KEY)
                if states:
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() not in (b"ratelimit", b"ratelimit-policy")
                    ]
                    for name, value in rate_headers(states).items():
                        headers.append((name.lower().encode(), value.encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
