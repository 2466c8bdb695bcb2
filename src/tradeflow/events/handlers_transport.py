"""Delivery to internal handlers: each (event, handler) takes effect once.

The consumption record and the handler's writes share one transaction — a
tenant session confined to the event's tenant. If the record already exists
the handler already took effect and the attempt is a no-op success; if the
transaction rolls back, neither exists and the next attempt runs it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.events.registry import (
    HANDLERS,
    AttemptResult,
    Claimed,
    HandlerContext,
    TransportDeps,
    register_transport,
)

_CONSUME = text(
    "INSERT INTO event_consumptions (handler, event_id, tenant_id) "
    "VALUES (:handler, :event_id, :tenant_id) ON CONFLICT DO NOTHING RETURNING 1"
)


async def already_consumed(session: AsyncSession, handler: str, item: Claimed) -> bool:
    row = (
        await session.execute(
            _CONSUME,
            {"handler": handler, "event_id": item.event.id, "tenant_id": item.event.tenant_id},
        )
    ).first()
    return row is None


class HandlerTransport:
    kind = "handler"
    uses_breaker = False

    def __init__(self, deps: TransportDeps) -> None:
        self._db = deps.db
        self._timeout = deps.settings.webhooks_timeout_seconds

    async def prepare(self, items: Sequence[Claimed]) -> None:
        return None

    async def deliver(self, item: Claimed) -> AttemptResult:
        handler = HANDLERS.get(item.subscriber_name)
        if handler is None:  # the claim only takes handlers this process knows
            return AttemptResult(outcome="failure", error=f"unknown handler {item.subscriber_name}")
        async with self._db.tenant_session(item.event.tenant_id) as session:
            if await already_consumed(session, handler.name, item):
                return AttemptResult(outcome="success", extra={"noop": True})
            ctx = HandlerContext(session=session, event=item.event, attempt=item.attempt)
            # The timeout keeps a stuck handler inside its lease, like an HTTP attempt.
            await asyncio.wait_for(handler.fn(ctx), timeout=self._timeout)
            await session.commit()
        return AttemptResult(outcome="success")

    async def close(self) -> None:
        return None


register_transport("handler", HandlerTransport)
