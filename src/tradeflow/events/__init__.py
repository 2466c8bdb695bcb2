"""Events: the transactional outbox, the delivery engine, subscribers and the scheduler.

Other contexts use:

* `publish(session, payload, tenant_id=…, aggregate_id=…)` — write an event in
  the caller's transaction (see `outbox`);
* `@event_type("order.created", aggregate="order")` on an `EventPayload`
  model — declare a typed, versioned payload (see `catalogue`);
* `@subscriber("order.created")` — run a handler once per event, in its own
  transaction (see `registry`);
* `@scheduled("name", cron="*/5 * * * *")` — a periodic job that runs once per
  tick however many workers are up (see `scheduler`).
"""

from tradeflow.events.catalogue import EventPayload, event_type
from tradeflow.events.outbox import Event, RecordsEvents, publish, publish_recorded
from tradeflow.events.registry import HandlerContext, subscriber
from tradeflow.events.scheduler import JobContext, scheduled

__all__ = [
    "Event",
    "EventPayload",
    "HandlerContext",
    "JobContext",
    "RecordsEvents",
    "event_type",
    "publish",
    "publish_recorded",
    "scheduled",
    "subscriber",
]
