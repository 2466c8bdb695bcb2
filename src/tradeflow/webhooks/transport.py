"""Delivery to webhook endpoints over HTTP (aiohttp), signed per Standard Webhooks.

* `webhook-id` is the event id: the same on every retry and every redelivery,
  so receivers deduplicate on it.
* 2xx is success; 410 Gone disables the endpoint; 429/503 `Retry-After` is
  honoured; anything else (3xx included: redirects are not followed),
  timeouts and refused connections are failures to retry.
* The body read is capped (`webhooks_max_response_bytes`); the first 1 KiB is
  kept on the attempt for the delivery log.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

import aiohttp
import orjson
from sqlalchemy import select
from yarl import URL

from tradeflow.events.registry import (
    AttemptResult,
    Claimed,
    DeliveredEvent,
    TransportDeps,
    register_transport,
)
from tradeflow.kit.keyring import DecryptionError
from tradeflow.kit.time import isoformat, utcnow
from tradeflow.webhooks import signing
from tradeflow.webhooks.models import WebhookEndpoint
from tradeflow.webhooks.ssrf import BlockedAddress, GuardedResolver, check_address

KEPT_BODY_BYTES = 1024
USER_AGENT = "Tradeflow-Webhooks/1"


# The standard library's encoder serves what orjson refuses (integers beyond 64 bits):
# payloads are JSON from the outbox, so nothing else can differ.
_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def message_body(event: DeliveredEvent) -> bytes:
    """The JSON body: Standard Webhooks' `type`/`timestamp`/`data` plus our envelope fields.

    Compact UTF-8 JSON, encoded with orjson: encoding was a tenth of a worker's CPU per
    delivery with the standard library's encoder."""
    message = {
        "id": str(event.id),
        "type": event.type,
        "version": event.version,
        "timestamp": isoformat(event.occurred_at),
        "tenant_id": str(event.tenant_id),
        "aggregate": {
            "type": event.aggregate_type,
            "id": event.aggregate_id,
            "sequence": event.sequence,
        },
        "data": event.payload,
    }
    try:
        return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return _FALLBACK.encode(message).encode()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())


# How long a loaded endpoint (URL, decrypted signing keys) is reused across batches. A
# rotation keeps the previous secret valid for its overlap window, and an edited URL or
# a deleted endpoint is picked up within this many seconds.
TARGET_TTL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Target:
    url: URL  # parsed once, not for every request
    keys: tuple[bytes, ...]  # decoded secrets, newest first
    loaded_at: float
    blocked: str | None  # why the SSRF guard refuses an IP-literal host, decided at load


class WebhookTransport:
    kind = "webhook"
    uses_breaker = True

    def __init__(self, deps: TransportDeps) -> None:
        self._db = deps.db
        self._keyring = deps.keyring
        self._settings = deps.settings
        self._targets: dict[uuid.UUID, _Target] = {}
        self._plaintexts: dict[tuple[uuid.UUID, str], str] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(allow_private=self._settings.webhooks_allow_private),
                limit=0,
                limit_per_host=self._settings.delivery_max_in_flight_per_endpoint * 2,
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.webhooks_timeout_seconds),
                headers={"user-agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._session

    def _decrypt(self, endpoint_id: uuid.UUID, token: str) -> str:
        # Keyed on the endpoint too: a ciphertext copied onto another row must fail its
        # AAD check there, not be served from the cache.
        plain = self._plaintexts.get((endpoint_id, token))
        if plain is None:
            plain = self._keyring.decrypt_str(token, aad=aad_for(endpoint_id))
            self._plaintexts[(endpoint_id, token)] = plain
        return plain

    async def prepare(self, items: Sequence[Claimed]) -> dict[uuid.UUID, str] | None:
        """Load URL and secrets of the batch's endpoints not loaded in the last
        `TARGET_TTL_SECONDS` (so a steady stream of small batches costs no query each).

        An endpoint whose secret does not decrypt or whose row is gone is reported, not
        raised: its deliveries get a failed attempt, the others go ahead. A database
        error raises (the worker hands the whole batch back)."""
        fresh_after = time.monotonic() - TARGET_TTL_SECONDS
        ids = [
            sid
            for sid in {i.subscriber_id for i in items}
            if (t := self._targets.get(sid)) is None or t.loaded_at < fresh_after
        ]
        if not ids:
            return None
        now = utcnow()
        loaded_at = time.monotonic()
        async with self._db.system_session() as session:
            rows = (
                (await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids))))
                .scalars()
                .all()
            )
        refused: dict[uuid.UUID, str] = {}
        for row in rows:
            try:
                secrets = [self._decrypt(row.id, row.secret_ciphertext)]
                if (
                    row.previous_secret_ciphertext
                    and row.previous_secret_expires_at
                    and row.previous_secret_expires_at > now
                ):
                    secrets.append(self._decrypt(row.id, row.previous_secret_ciphertext))
                keys = tuple(signing.secret_bytes(s) for s in secrets)
            except (DecryptionError, ValueError) as exc:
                # Not cached: a key ring fixed by a restart or a rotated secret is
                # picked up by the next attempt.
                self._targets.pop(row.id, None)
                what = "decrypted" if isinstance(exc, DecryptionError) else "decoded"
                refused[row.id] = f"the endpoint's signing secret cannot be {what} ({exc})"
                continue
            url = URL(row.url)
            self._targets[row.id] = _Target(url, keys, loaded_at, self._literal_refused(url))
        for gone in set(ids) - {row.id for row in rows}:
            self._targets.pop(gone, None)
            refused[gone] = "webhook endpoint no longer exists"
        return refused or None

    def _literal_refused(self, url: URL) -> str | None:
        """The guard's verdict on an IP-literal host (aiohttp connects to those without
        asking the resolver, where names are checked); None for a name or an allowed IP."""
        try:
            check_address(url.host or "", allow_private=self._settings.webhooks_allow_private)
        except ValueError:
            return None  # a name: checked by the resolver at each new connection
        except BlockedAddress as exc:
            return str(exc)
        return None

    async def deliver(self, item: Claimed) -> AttemptResult:
        target = self._targets.get(item.subscriber_id)
        if target is None:
            return AttemptResult(outcome="failure", error="webhook endpoint no longer exists")
        if target.blocked is not None:
            return AttemptResult(outcome="blocked", error=target.blocked, started_at=utcnow())
        body = message_body(item.event)
        headers = signing.headers(target.keys, str(item.event.id), int(time.time()), body)
        started = utcnow()
        try:
            async with self._client().post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(self._settings.webhooks_max_response_bytes)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("retry-after"))
        except TimeoutError:
            return AttemptResult(
                outcome="timeout", error="no response within the timeout", started_at=started
            )
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            if isinstance(cause, BlockedAddress):
                return AttemptResult(outcome="blocked", error=str(cause), started_at=started)
            return AttemptResult(outcome="connect_error", error=str(exc), started_at=started)
        except BlockedAddress as exc:
            return AttemptResult(outcome="blocked", error=str(exc), started_at=started)
        except (aiohttp.ClientError, OSError) as exc:
            return AttemptResult(
                outcome="failure", error=f"{type(exc).__name__}: {exc}", started_at=started
            )
        text = raw[:KEPT_BODY_BYTES].decode("utf-8", "replace")
        if 200 <= status < 300:
            return AttemptResult(
                outcome="success", status_code=status, response_body=text, started_at=started
            )
        if status == 410:
            return AttemptResult(
                outcome="gone",
                status_code=status,
                response_body=text,
                error="the endpoint answered 410 Gone",
                started_at=started,
            )
        return AttemptResult(
            outcome="failure",
            status_code=status,
            response_body=text,
            error=f"HTTP {status}",
            retry_after=retry_after if status in (429, 503) else None,
            started_at=started,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let aiohttp's transports finish closing before the loop goes away.
            await asyncio.sleep(0)


def aad_for(endpoint_id: uuid.UUID) -> bytes:
    """Binds a secret's ciphertext to its endpoint row, so it cannot be moved to another."""
    return b"webhook_endpoints:" + endpoint_id.bytes


register_transport("webhook", WebhookTransport)
