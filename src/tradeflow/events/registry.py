"""Who receives events: internal handlers (`@subscriber`) and delivery transports.

A handler is an async function of a `HandlerContext`. The worker runs it in
its own transaction, a tenant session confined to the event's tenant, and
writes the consumption record `(handler, event_id)` in that same transaction:
a handler whose transaction committed is never run again for that event, and
one whose transaction rolled back left nothing behind and is retried.

A transport delivers to one kind of subscriber (`handler` here, `webhook` in
the webhooks context; connectors can add their own). Transports register
themselves when their module is imported (`load_plugins`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.catalogue import (
    EVENT_TYPES,
    EventPayload,
    _import_each,
    load_event_modules,
)
from tradeflow.kit.keyring import Keyring


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """The event as a subscriber receives it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: datetime
    payload: dict[str, Any]

    def typed(self) -> EventPayload | None:
        """The payload parsed by its registered model (None for an unregistered type)."""
        model = EVENT_TYPES.get((self.type, self.version))
        return model.model_validate(self.payload) if model is not None else None


@dataclass(frozen=True, slots=True)
class HandlerContext:
    session: AsyncSession  # tenant-confined; committed by the worker after the handler returns
    event: DeliveredEvent
    attempt: int

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.event.tenant_id


HandlerFn = Callable[[HandlerContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    event_types: tuple[str, ...]
    fn: HandlerFn


HANDLERS: dict[str, Handler] = {}


def subscriber(*event_types: str, name: str | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Run the decorated handler once for each event of `event_types` (`order.*` matches a prefix).

    Handlers must not call remote systems inside their transaction; record the
    intent (e.g. publish another event) and let a transport act on it.
    """
    if not event_types:
        raise ValueError("a subscriber needs at least one event type")

    def register(fn: HandlerFn) -> HandlerFn:
        handler_name = name or f"{fn.__module__}.{fn.__qualname__}"
        HANDLERS[handler_name] = Handler(handler_name, tuple(event_types), fn)
        return fn

    return register


# -- transports ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """One delivery leased by this worker."""

    delivery_id: uuid.UUID
    token: int  # the claim counter at lease time: completion is fenced on it
    attempt: int  # this attempt's number, 1-based
    subscriber_id: uuid.UUID
    subscriber_kind: str
    subscriber_name: str
    takeover: bool
    event: DeliveredEvent


Outcome = Literal["success", "failure", "timeout", "connect_error", "blocked", "gone"]


@dataclass(slots=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after: float | None = None  # seconds the subscriber asked us to wait
    started_at: datetime | None = None
    duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


class Transport(Protocol):
    kind: str
    uses_breaker: bool  # remote subscribers trip a circuit breaker; handlers do not

    async def prepare(self, items: Sequence[Claimed]) -> Mapping[uuid.UUID, str] | None:
        """Load what the batch needs (e.g. endpoint URLs and secrets) in one go.

        Returns, for each subscriber that cannot be served (say its secret does not
        decrypt), why: each of its deliveries gets a failed attempt with that reason and
        follows the retry schedule. Raises when the batch as a whole cannot start (say
        the database is unreachable): the worker hands the leases back without counting
        an attempt, due again after a short backoff.
        """

    async def deliver(self, item: Claimed) -> AttemptResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportDeps:
    settings: Settings
    db: Database
    keyring: Keyring


TransportFactory = Callable[[TransportDeps], Transport]
TRANSPORTS: dict[str, TransportFactory] = {}


def register_transport(kind: str, factory: TransportFactory) -> None:
    TRANSPORTS[kind] = factory


def load_plugins() -> None:
    """Import every context's `events`, `handlers`, `transport` and `jobs` modules."""
    load_event_modules()
    for module in ("handlers", "transport", "jobs"):
        _import_each(module)
