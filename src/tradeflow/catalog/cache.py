"""Cache-aside for price look-ups: in-process by default, Redis when `REDIS_URL` is set.

What is cached is the *candidate set* for one SKU and one customer — the SKU's
facts, the customer's contract prices and the price lists of the customer's
currency and group — not the final price, so one entry serves every quantity
and date (the pure `pricing.decide` runs on each quote).

Invalidation is by key, not by deletion: every key carries the tenant's
pricing version, a counter bumped in the same transaction as every
price-affecting change (and its `price_list.changed` / `contract_price.changed`
event). A quote reads the version first, so the first quote after a commit
misses and reloads — in every API process at once, with no message to lose.
The worker's handler of those events then deletes the tenant's entries of
older versions from Redis (and from its own process); in the API processes'
memory they age out (TTL, LRU). Correctness never waits for that handler.

A Redis failure never fails a quote: it is logged and the database answers.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from cachetools import TTLCache
from prometheus_client import Counter

from tradeflow.catalog.pricing import ContractCandidate, ListCandidate, Tier
from tradeflow.config import Settings

log = structlog.get_logger(__name__)

PRICE_CACHE_LOOKUPS = Counter(
    "tradeflow_price_cache_lookups_total",
    "Price look-ups by cache outcome (hit, miss, error).",
    ["outcome"],
)


@dataclass(frozen=True, slots=True)
class SkuFacts:
    id: uuid.UUID
    code: str
    name: str
    unit: str
    active: bool  # the SKU's and its product's flag together
    product_id: uuid.UUID
    product_name: str


@dataclass(frozen=True, slots=True)
class Candidates:
    """Everything the database says about pricing one SKU for one customer (None: no such SKU)."""

    sku: SkuFacts | None
    contracts: tuple[ContractCandidate, ...] = ()
    lists: tuple[ListCandidate, ...] = ()


def cache_key(
    tenant_id: uuid.UUID,
    version: int,
    *,
    sku: str,
    customer_id: uuid.UUID,
    currency: str,
    group_id: uuid.UUID | None,
) -> str:
    return f"tf:price:{tenant_id}:{version}:{customer_id}:{currency}:{group_id or '-'}:{sku}"


def _older(key: str, tenant_id: uuid.UUID, version: int) -> bool:
    parts = key.split(":", 4)  # tf, price, tenant, version, rest
    return (
        len(parts) == 5
        and parts[2] == str(tenant_id)
        and parts[3].isdigit()
        and int(parts[3]) < version
    )


# -- serialisation (Redis stores JSON; the memory cache keeps the objects) ----------------------
def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _pdt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def dumps(c: Candidates) -> str:
    sku = c.sku
    return json.dumps(
        {
            "sku": None
            if sku is None
            else {
                "id": str(sku.id),
                "code": sku.code,
                "name": sku.name,
                "unit": sku.unit,
                "active": sku.active,
                "product_id": str(sku.product_id),
                "product_name": sku.product_name,
            },
            "contracts": [
                [str(x.id), x.currency, x.min_quantity, x.unit_price_minor,
                 _dt(x.valid_from), _dt(x.valid_to), x.note]
                for x in c.contracts
            ],
            "lists": [
                [str(x.id), x.name, x.currency,
                 str(x.customer_group_id) if x.customer_group_id else None,
                 _dt(x.valid_from), _dt(x.valid_to), x.active,
                 [[str(t.entry_id), t.min_quantity, t.unit_price_minor] for t in x.tiers]]
                for x in c.lists
            ],
        },
        separators=(",", ":"),
    )  # fmt: skip


def loads(raw: str | bytes) -> Candidates:
    data: dict[str, Any] = json.loads(raw)
    s = data["sku"]
    sku = (
        None
        if s is None
        else SkuFacts(
            id=uuid.UUID(s["id"]),
            code=s["code"],
            name=s["name"],
            unit=s["unit"],
            active=s["active"],
            product_id=uuid.UUID(s["product_id"]),
            product_name=s["product_name"],
        )
    )
    contracts = tuple(
        ContractCandidate(
            id=uuid.UUID(i), currency=cur, min_quantity=mq, unit_price_minor=p,
            valid_from=_pdt(vf), valid_to=_pdt(vt), note=note,
        )
        for i, cur, mq, p, vf, vt, note in data["contracts"]
    )  # fmt: skip
    lists = tuple(
        ListCandidate(
            id=uuid.UUID(i), name=name, currency=cur,
            customer_group_id=uuid.UUID(g) if g else None,
            valid_from=_pdt(vf), valid_to=_pdt(vt), active=active,
            tiers=tuple(Tier(uuid.UUID(e), mq, p) for e, mq, p in tiers),
        )
        for i, name, cur, g, vf, vt, active, tiers in data["lists"]
    )  # fmt: skip
    return Candidates(sku=sku, contracts=contracts, lists=lists)


# -- back ends ---------------------------------------------------------------------------------
class PriceCache(Protocol):
    async def get(self, key: str) -> Candidates | None: ...

    async def set(self, key: str, value: Candidates) -> None: ...

    async def clear(self) -> None: ...

    async def evict_older(self, tenant_id: uuid.UUID, version: int) -> int: ...

    async def close(self) -> None: ...


class MemoryPriceCache:
    """An in-process TTL + LRU cache (one per process; the version key keeps them coherent)."""

    def __init__(self, *, max_entries: int, ttl_seconds: int) -> None:
        self.enabled = max_entries > 0 and ttl_seconds > 0
        self._data: TTLCache[str, Candidates] = TTLCache(
            maxsize=max(1, max_entries), ttl=max(1, ttl_seconds)
        )

    async def get(self, key: str) -> Candidates | None:
        if not self.enabled:
            return None
        return self._data.get(key)

    async def set(self, key: str, value: Candidates) -> None:
        if self.enabled:
            self._data[key] = value

    async def clear(self) -> None:
        self._data.clear()

    async def evict_older(self, tenant_id: uuid.UUID, version: int) -> int:
        stale = [k for k in list(self._data) if _older(k, tenant_id, version)]
        for key in stale:
            self._data.pop(key, None)
        return len(stale)

    async def close(self) -> None:
        self._data.clear()


class RedisPriceCache:
    """Shared by every API process; entries are JSON with a TTL."""

    def __init__(self, url: str, *, ttl_seconds: int) -> None:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.ttl = max(1, ttl_seconds)
        # A cache must fail fast: no retries, short timeouts; the database is the fallback.
        self.redis = Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 0)
        )

    async def get(self, key: str) -> Candidates | None:
        raw = await self.redis.get(key)
        return loads(raw) if raw is not None else None

    async def set(self, key: str, value: Candidates) -> None:
        await self.redis.set(key, dumps(value), ex=self.ttl)

    async def clear(self) -> None:
        async for key in self.redis.scan_iter(match="tf:price:*", count=500):
            await self.redis.delete(key)

    async def evict_older(self, tenant_id: uuid.UUID, version: int) -> int:
        stale = [
            key
            async for key in self.redis.scan_iter(match=f"tf:price:{tenant_id}:*", count=500)
            if _older(key.decode() if isinstance(key, bytes) else key, tenant_id, version)
        ]
        for start in range(0, len(stale), 500):
            await self.redis.delete(*stale[start : start + 500])
        return len(stale)

    async def close(self) -> None:
        await self.redis.aclose()


def make_price_cache(settings: Settings) -> PriceCache:
    if settings.redis_url:
        return RedisPriceCache(settings.redis_url, ttl_seconds=settings.price_cache_ttl_seconds)
    return MemoryPriceCache(
        max_entries=settings.price_cache_max_entries, ttl_seconds=settings.price_cache_ttl_seconds
    )


# The process's cache. Service functions are called with a session only (orders call
# `quote(session, ...)`), so the cache is process state, configured once at start-up.
_cache: PriceCache = MemoryPriceCache(max_entries=50_000, ttl_seconds=300)


def configure(settings: Settings) -> PriceCache:
    global _cache
    _cache = make_price_cache(settings)
    return _cache


def current() -> PriceCache:
    return _cache


async def lookup(key: str) -> Candidates | None:
    try:
        found = await _cache.get(key)
    except Exception as exc:  # a cache outage degrades to the database, never to an error
        # No traceback: during an outage this fires on every quote.
        log.warning("price_cache_get_failed", error=repr(exc))
        PRICE_CACHE_LOOKUPS.labels("error").inc()
        return None
    PRICE_CACHE_LOOKUPS.labels("hit" if found is not None else "miss").inc()
    return found


async def evict_older(tenant_id: uuid.UUID, version: int) -> int:
    """Drop the tenant's entries from before `version` (housekeeping: they are never read)."""
    try:
        return await _cache.evict_older(tenant_id, version)
    except Exception as exc:
        log.warning("price_cache_evict_failed", error=repr(exc))
        return 0


async def store(key: str, value: Candidates) -> None:
    try:
        await _cache.set(key, value)
    except Exception as exc:
        log.warning("price_cache_set_failed", error=repr(exc))
