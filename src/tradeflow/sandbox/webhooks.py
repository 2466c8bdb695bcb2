"""The sandbox's webhook sender: signed, asynchronous, retried — and, on request, misbehaving.

Events are queued in the sandbox database in the transaction that changed the
object, each carrying a snapshot of the object at that moment, and sent by
one task per sandbox process. Signing follows Standard Webhooks
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`)
with the account's `whsec_` secret. A non-2xx answer is retried with
exponential backoff up to `MAX_ATTEMPTS`.

Per-account faults (see `schemas.Faults`) make it send each event twice,
hold events back for a later flush in reverse order, sign with the wrong key
or stamp a skewed timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from standardwebhooks.webhooks import Webhook

from tradeflow.sandbox.schemas import Faults
from tradeflow.sandbox.store import Store

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 30.0
POLL_SECONDS = 0.25


def sign(secret: str, event_id: str, body: str, *, offset_seconds: int = 0) -> dict[str, str]:
    """Standard Webhooks headers for `body` (offset shifts the timestamp, for fault injection)."""
    timestamp = datetime.now(UTC) + timedelta(seconds=offset_seconds)
    signature = Webhook(secret).sign(event_id, timestamp, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


class WebhookSender:
    """Sends due webhook events until stopped; `wake()` after queueing one."""

    def __init__(self, store: Store, *, timeout: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self.paused = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while not stop.is_set():
                self._wake.clear()
                sent = 0
                if not self.paused:
                    try:
                        sent = await self.send_due(client)
                    except Exception:  # the sender must outlive a database hiccup
                        log.exception("sandbox_webhook_sender_error")
                if sent:
                    continue
                waiter = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait(
                    [waiter, stopper], timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                stopper.cancel()

    async def send_due(self, client: httpx.AsyncClient) -> int:
        rows = await self.store.due_webhooks()
        for row in rows:
            await self._send_one(client, row)
        return len(rows)

    async def _send_one(self, client: httpx.AsyncClient, row: object) -> None:
        event_id: str = row.id  # type: ignore[attr-defined]
        faults = Faults.model_validate(row.faults or {})  # type: ignore[attr-defined]
        body = json.dumps(row.payload, separators=(",", ":"))  # type: ignore[attr-defined]
        secret: str = row.webhook_secret  # type: ignore[attr-defined]
        if faults.webhook_signature == "invalid":
            secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        headers = sign(
            secret, event_id, body, offset_seconds=faults.webhook_timestamp_offset_seconds
        )
        headers["content-type"] = "application/json"
        headers["user-agent"] = "tradeflow-sandbox-processor"
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(row.webhook_url, content=body, headers=headers)  # type: ignore[attr-defined]
            status = response.status_code
            ok = 200 <= status < 300
            if not ok:
                error = response.text[:500]
        except httpx.HTTPError as exc:
            ok = False
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempts: int = row.attempts + 1  # type: ignore[attr-defined]
        retry = None
        if not ok and attempts < MAX_ATTEMPTS:
            retry = min(BASE_BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        await self.store.record_attempt(
            event_id, ok=ok, status_code=status, error=error, retry_in_seconds=retry
        )
        log.info("sandbox_webhook_sent", event_id=event_id, status=status, ok=ok)
