"""What the ledger does on other contexts' events: book them.

One handler for every booked event type. The events engine runs it once per event in
its own transaction (with a consumption record); the ledger's unique source-event key
makes a second run a no-op even without that record.
"""

from __future__ import annotations

import structlog

from tradeflow.events import HandlerContext, subscriber
from tradeflow.ledger import service
from tradeflow.ledger.rules import POSTED_EVENT_TYPES

log = structlog.get_logger(__name__)

HANDLER_NAME = "ledger.post"


@subscriber(*POSTED_EVENT_TYPES, name=HANDLER_NAME)
async def post_to_ledger(ctx: HandlerContext) -> None:
    result = await service.post_event(
        ctx.session,
        tenant_id=ctx.tenant_id,
        event_id=ctx.event.id,
        event_type=ctx.event.type,
        payload=ctx.event.payload,
        occurred_at=ctx.event.occurred_at,
    )
    log.info(
        "ledger_event_posted",
        event_id=str(ctx.event.id),
        event_type=ctx.event.type,
        entry_id=str(result.entry_id) if result.entry_id else None,
        created=result.created,
        skipped=result.skipped_reason,
    )
