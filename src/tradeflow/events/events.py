"""Event types the delivery engine itself publishes (operational events about deliveries)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from tradeflow.events.catalogue import EventPayload, event_type


@event_type("delivery.exhausted", aggregate="subscriber")
class DeliveryExhausted(EventPayload):
    """A delivery used its whole retry budget and became a dead letter (redrive it to retry)."""

    delivery_id: uuid.UUID
    subscriber_id: uuid.UUID
    subscriber_kind: str = Field(description="`webhook` or `handler`.")
    event_id: uuid.UUID
    event_type: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None


@event_type("delivery.recovered", aggregate="subscriber")
class DeliveryRecovered(EventPayload):
    """The first successful delivery to a subscriber after one or more failures."""

    subscriber_id: uuid.UUID
    subscriber_kind: str
    delivery_id: uuid.UUID
    failing_since: datetime | None = None
    consecutive_failures: int


@event_type("endpoint.disabled", aggregate="subscriber")
class EndpointDisabled(EventPayload):
    """A webhook endpoint was disabled: it answered 410 Gone or failed continuously too long."""

    subscriber_id: uuid.UUID
    reason: str = Field(description="`gone` (HTTP 410) or `failing` (failing for too long).")
    failing_since: datetime | None = None


OPERATIONAL_EVENT_TYPES = frozenset(
    {"delivery.exhausted", "delivery.recovered", "endpoint.disabled"}
)
