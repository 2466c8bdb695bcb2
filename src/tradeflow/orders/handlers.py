"""What orders do on payment facts: move the invoice and order to partially_paid / paid /
refunded. The worker runs each handler once per event (consumption record), and
`apply_payment_fact` is idempotent on its own too (one settlement row per event id).
"""

from __future__ import annotations

from tradeflow.events.registry import HandlerContext, subscriber
from tradeflow.orders.invoicing import FactKind, PaymentFact, apply_payment_fact

_KINDS: dict[str, FactKind] = {
    "payment.captured": "captured",
    "payment.failed": "failed",
    "refund.succeeded": "refunded",
}


@subscriber(*_KINDS, name="orders.apply_payment_fact")
async def on_payment_fact(ctx: HandlerContext) -> None:
    await apply_payment_fact(
        ctx.session,
        tenant_id=ctx.tenant_id,
        event_id=ctx.event.id,
        kind=_KINDS[ctx.event.type],
        fact=PaymentFact.model_validate(ctx.event.payload),
    )
