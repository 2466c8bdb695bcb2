"""Request and response bodies of the events API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EventOut(_Out):
    id: uuid.UUID
    type: str
    version: int
    aggregate_type: str
    aggregate_id: str
    sequence: int = Field(description="Position of the event in its aggregate's stream, from 1.")
    occurred_at: datetime
    payload: dict[str, Any]
    dispatched_at: datetime | None = Field(
        description="When the event was fanned out to its subscribers (null: not yet)."
    )


class AttemptOut(_Out):
    id: uuid.UUID
    delivery_id: uuid.UUID
    attempt: int
    started_at: datetime
    duration_ms: float
    outcome: str = Field(
        description="success, failure, timeout, connect_error, blocked (SSRF guard) or gone (410)."
    )
    status_code: int | None
    error: str | None
    response_body: str | None = Field(description="The first KiB of the response body.")


class DeliveryOut(_Out):
    id: uuid.UUID
    event_id: uuid.UUID
    subscriber_id: uuid.UUID = Field(description="The webhook endpoint's id, or a handler's.")
    event_type: str
    aggregate: str
    sequence: int
    status: str = Field(description="pending, delivered, dead (a dead letter) or cancelled.")
    attempts: int
    next_attempt_at: datetime
    in_flight: bool = Field(description="An attempt holds a lease on it right now.")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime


class DeliveryDetailOut(DeliveryOut):
    attempt_log: list[AttemptOut]


class RedriveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: uuid.UUID | None = Field(default=None, description="Only this subscriber's.")
    event_type: str | None = None
    since: AwareDatetime | None = Field(default=None, description="Only deliveries created since.")


class RedriveOut(BaseModel):
    redriven: int
    delivery_ids: list[uuid.UUID]


class JobOut(_Out):
    name: str
    cron: str
    enabled: bool
    next_run_at: datetime
    running: bool
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None = Field(description="ok, failed, running or abandoned.")
    last_error: str | None
    last_duration_ms: float | None
    run_count: int
    failure_count: int


class RetryPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retry_schedule: list[int] | None = Field(
        description="Seconds to wait after each failed attempt (null: the installation default).",
        max_length=30,
    )


class RetryPolicyOut(BaseModel):
    retry_schedule: list[int] = Field(description="The schedule in effect for this tenant.")
    custom: bool
    attempts: int = Field(description="Attempts before a delivery becomes a dead letter.")
    jitter: float


class EventTypeOut(BaseModel):
    type: str
    version: int
    aggregate: str
    description: str
    payload_schema: dict[str, Any] = Field(description="JSON Schema of the payload (`data`).")
