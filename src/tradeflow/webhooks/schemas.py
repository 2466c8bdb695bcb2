"""Request and response bodies of `/v1/webhook-endpoints`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tradeflow.webhooks.service import EndpointView

EventTypes = list[str] | None


class EndpointCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https (or http) URL that receives POSTs.")
    event_types: EventTypes = Field(
        default=None,
        max_length=100,
        description="Types to receive (`order.created`, `order.*`, `*`); null or empty: all.",
    )
    description: str = Field(default="", max_length=500)
    max_in_flight: int | None = Field(
        default=None, ge=1, le=256, description="Concurrent requests to this endpoint at most."
    )


class EndpointUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    event_types: EventTypes = Field(default=None, max_length=100, description="null: all types.")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None, description="Re-enabling resets the breaker and failure streak."
    )
    max_in_flight: int | None = Field(default=None, ge=1, le=256)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str] | None
    enabled: bool
    paused: bool
    disabled_reason: str | None = Field(description="gone (410), failing (too long) or manual.")
    breaker_state: str = Field(description="closed, open or half_open.")
    breaker_open_until: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    max_in_flight: int | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (rotation overlap)."
    )
    created_at: datetime

    @classmethod
    def of(cls, view: EndpointView) -> EndpointOut:
        e, s = view.endpoint, view.subscriber
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            event_types=s.event_types,
            enabled=s.enabled,
            paused=s.paused,
            disabled_reason=s.disabled_reason,
            breaker_state=s.breaker_state,
            breaker_open_until=s.breaker_open_until,
            consecutive_failures=s.consecutive_failures,
            failing_since=s.failing_since,
            last_success_at=s.last_success_at,
            last_failure_at=s.last_failure_at,
            max_in_flight=s.max_in_flight,
            previous_secret_expires_at=e.previous_secret_expires_at,
            created_at=e.created_at,
        )


class EndpointCreatedOut(EndpointOut):
    secret: str | None = Field(
        description="The signing secret (`whsec_…`), shown once; null on an idempotent replay."
    )


class SecretOut(BaseModel):
    id: uuid.UUID
    secret: str
    previous_secret_expires_at: datetime | None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 24 * 3600,
        description="How long the old secret keeps signing too (default from settings).",
    )


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="Resend what failed or was missed since then.")


class RecoverOut(BaseModel):
    redriven: int = Field(description="Dead or waiting deliveries made due now.")
    created: int = Field(description="Deliveries created for events the endpoint missed.")


class TestSentOut(BaseModel):
    event_id: uuid.UUID
    type: str = "webhook.test"
