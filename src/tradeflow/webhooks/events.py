"""Event types of the webhooks context."""

from __future__ import annotations

import uuid
from datetime import datetime

from tradeflow.events import EventPayload, event_type


@event_type("webhook.test", aggregate="subscriber")
class WebhookTest(EventPayload):
    """A test message sent to one endpoint on request (`POST /v1/webhook-endpoints/{id}/test`)."""

    endpoint_id: uuid.UUID
    requested_at: datetime
    message: str = "This is a test event from Tradeflow."
