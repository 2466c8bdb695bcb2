"""Which orders a seller's 1C should receive: recorded from order events, in their transaction.

One row per order holds its latest version and status; each instance's acknowledgements say
which version its 1C already has. The handler does not read the orders context's tables: the
event carries the facts (status, version)."""

from __future__ import annotations

import uuid

from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.events.registry import HandlerContext, subscriber
from tradeflow.integrations import external_ids

EXPORTED_EVENTS = (
    "order.confirmed",
    "order.invoiced",
    "order.partially_paid",
    "order.paid",
    "order.fulfilled",
    "order.cancelled",
    "order.refunded",
)
# An order cancelled before it was ever confirmed never was a sale: 1C need not hear of it.
NEVER_SOLD = frozenset({"placed", "pending_approval", "approved", "rejected", None})


@subscriber(*EXPORTED_EVENTS, name="commerceml.note_order_change")
async def note_order_change(ctx: HandlerContext) -> None:
    if not await external_ids.tenant_has_kind(ctx.session, ctx.tenant_id, "commerceml"):
        return
    payload = ctx.event.payload
    order_id = uuid.UUID(str(payload["order_id"]))
    repo = CommerceMLRepository(ctx.session, ctx.tenant_id)
    if (
        ctx.event.type == "order.cancelled"
        and payload.get("previous_status") in NEVER_SOLD
        and not await repo.has_order_change(order_id)
    ):
        return
    await repo.note_order_change(
        order_id, int(payload["version"]), str(payload["status"]), ctx.event.occurred_at
    )
