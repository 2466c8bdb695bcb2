"""What integrations does on other contexts' events (internal handlers, run once per event)."""

from __future__ import annotations

from tradeflow.events.registry import HandlerContext, subscriber
from tradeflow.integrations import settlements


@subscriber("payment.captured", "refund.succeeded", name="integrations.record_settlement")
async def record_settlement(ctx: HandlerContext) -> None:
    """Keep the processor's reported totals per payment for reconciliation."""
    await settlements.record_fact(
        ctx.session, ctx.tenant_id, ctx.event.type, ctx.event.payload, at=ctx.event.occurred_at
    )
