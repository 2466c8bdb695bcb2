"""Verified API keys, remembered in-process for a few seconds.

An API key request would otherwise open its own system transaction (look-up by prefix,
hash compare, maybe a `last_used_at` touch) before the business transaction even starts.
Keys are looked up again after `TTL_SECONDS`, so a revocation, a scope change or a
deleted key takes effect in every API process within that time (docs/security.md,
"API key cache"). A key's own `expires_at` is checked on every request, cached or not.

Only successful look-ups are remembered, keyed by the SHA-256 of the presented key (what
the database stores): an unknown or revoked key always goes to the database, and a flood
of bad keys cannot push good ones out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache

from tradeflow.identity.principal import Principal

TTL_SECONDS = 5.0
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class CachedKey:
    principal: Principal
    expires_at: datetime | None  # the key's own expiry, checked on every hit


class ApiKeyCache:
    """Key hash → principal and expiry, forgotten `ttl` seconds after the look-up."""

    def __init__(
        self,
        *,
        ttl: float = TTL_SECONDS,
        maxsize: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[bytes, CachedKey] = TTLCache(maxsize, ttl, timer=clock)

    def get(self, key_hash: bytes) -> CachedKey | None:
        return self._entries.get(key_hash)

    def put(self, key_hash: bytes, entry: CachedKey) -> None:
        self._entries[key_hash] = entry

    def forget(self, key_hash: bytes) -> None:
        self._entries.pop(key_hash, None)
