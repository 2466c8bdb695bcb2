"""A real HTTP webhook receiver on 127.0.0.1 for the delivery tests.

It verifies Standard Webhooks signatures with the reference library, applies
each `webhook-id` once (the "effect"), and records what a fault test checks:
duplicates, per-aggregate order of effects, and whether one message was ever
in flight twice (a request counts as in flight until its response is sent or
the client hangs up). It can be told to answer 500, 410 or 429, to be slow,
or to refuse connections.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class Sink:
    port: int = field(default_factory=free_port)
    secrets: list[str] = field(default_factory=list)
    mode: str = "ok"  # ok, fail, gone, retry_after, slow, redirect
    delay: float = 0.0
    retry_after: str = "1"
    requests: list[Received] = field(default_factory=list)
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    bad_signatures: int = 0
    overlaps: list[str] = field(default_factory=list)
    _in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await self.listen()

    async def listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def refuse(self) -> None:
        """Stop listening: new connections are refused until `listen()`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except Exception:
                continue
        return False

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        msg_id = headers.get("webhook-id", "")
        self._in_flight[msg_id] += 1
        if self._in_flight[msg_id] > 1:
            self.overlaps.append(msg_id)
        try:
            if self.secrets and not self.verify(body, headers):
                self.bad_signatures += 1
                return self._record(msg_id, body, headers, 401)
            mode = self.mode
            if mode == "slow":
                await asyncio.sleep(self.delay)
            if mode == "fail":
                return self._record(msg_id, body, headers, 500)
            if mode == "gone":
                return self._record(msg_id, body, headers, 410)
            if mode == "retry_after":
                return self._record(
                    msg_id, body, headers, 429, extra={"Retry-After": self.retry_after}
                )
            if mode == "redirect":
                return self._record(msg_id, body, headers, 302, extra={"Location": "/elsewhere"})
            payload = json.loads(body)
            if msg_id not in self.effects:
                self.effects[msg_id] = payload
                agg = payload.get("aggregate", {})
                self.order[f"{agg.get('type')}:{agg.get('id')}"].append(int(agg.get("sequence", 0)))
            return self._record(msg_id, body, headers, 200)
        finally:
            self._in_flight[msg_id] -= 1

    def _record(
        self,
        msg_id: str,
        body: bytes,
        headers: dict[str, str],
        status: int,
        extra: dict[str, str] | None = None,
    ) -> web.Response:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        self.requests.append(Received(msg_id, parsed, headers, status))
        self.changed.set()
        return web.Response(status=status, text="ok" if status < 300 else "no", headers=extra)

    # -- the four checks of a fault test -----------------------------------------------------
    def duplicates(self) -> int:
        delivered = [r.webhook_id for r in self.requests if r.status == 200]
        return len(delivered) - len(set(delivered))

    def out_of_order(self) -> dict[str, list[int]]:
        return {k: v for k, v in self.order.items() if v != sorted(v)}
