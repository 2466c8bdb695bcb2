"""What payments does on events: apply stored processor webhooks (once each)."""

from __future__ import annotations

from tradeflow.events import HandlerContext, subscriber
from tradeflow.payments import inbound
from tradeflow.payments.events import ProcessorEventReceived

HANDLER_NAME = "payments.apply_processor_event"


@subscriber("processor_event.received", name=HANDLER_NAME)
async def apply_processor_event(ctx: HandlerContext) -> None:
    received = ProcessorEventReceived.model_validate(ctx.event.payload)
    await inbound.apply(ctx.session, tenant_id=ctx.tenant_id, webhook_id=received.webhook_id)
