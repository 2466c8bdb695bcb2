"""What the processors' own books say: their settlement listings, for other contexts.

Reconciliation (integrations) compares the ledger with what each processor
reports having captured and refunded, fees included — not only with what
payments heard through events, so a capture the processor made that Tradeflow
never heard of shows up. Two steps, because the listing is a remote call:

1. `settlement_sources(session, keyring, tenant_id=…)` — in a short read, the
   tenant's configured processors (enabled or not: a disabled processor still
   holds its payments' money);
2. `fetch_settlements(source, since=…)` — outside any transaction, every
   movement at or after `since`, page by page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.kit.keyring import Keyring
from tradeflow.payments import configuration
from tradeflow.payments.configuration import LoadedConfig
from tradeflow.payments.processors.base import (
    ProcessorError,
    ProcessorRejected,
    SettlementItem,
)
from tradeflow.payments.processors.registry import available
from tradeflow.payments.repository import PaymentsRepository

log = structlog.get_logger(__name__)

__all__ = ["ProcessorBooks", "SettlementItem", "fetch_settlements", "settlement_sources"]

# A bound on one run's listing (pages × page size), so a huge history cannot stall it.
MAX_PAGES = 1_000
PAGE_SIZE = 100


@dataclass(frozen=True)
class ProcessorBooks:
    """One processor's listing: `supported` False when the plugin cannot list; `error` when
    the listing could not be read (the processor down, a refusal, a truncated history)."""

    processor: str
    items: tuple[SettlementItem, ...] = ()
    supported: bool = True
    error: str | None = None


async def settlement_sources(
    session: AsyncSession, keyring: Keyring, *, tenant_id: uuid.UUID
) -> list[LoadedConfig]:
    rows = await PaymentsRepository(session, tenant_id).configs()
    return [configuration.load(keyring, r) for r in rows if r.processor in available()]


async def fetch_settlements(source: LoadedConfig, *, since: datetime) -> ProcessorBooks:
    """Every money movement `source`'s processor lists at or after `since`. Never raises."""
    items: list[SettlementItem] = []
    cursor: str | None = None
    try:
        async with source.build() as processor:
            for _ in range(MAX_PAGES):
                page = await processor.list_settlements(since=since, cursor=cursor, limit=PAGE_SIZE)
                items += page.items
                cursor = page.next_cursor
                if cursor is None:
                    return ProcessorBooks(source.processor, tuple(items))
    except ProcessorRejected as exc:
        if exc.code == "settlements_not_supported":
            return ProcessorBooks(source.processor, supported=False)
        return ProcessorBooks(source.processor, error=f"refused: {exc.message}")
    except ProcessorError as exc:
        log.info("processor_settlements_unreadable", processor=source.processor, error=str(exc))
        return ProcessorBooks(source.processor, error=f"{type(exc).__name__}: {exc.message}")
    return ProcessorBooks(
        source.processor,
        error=f"more than {MAX_PAGES * PAGE_SIZE} movements since {since.isoformat()}",
    )
