"""Typed models of the events tables (the schema itself is in `events_0001`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.models import Base


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, server_default=None)
    tenant_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    aggregate_type: Mapped[str] = mapped_column(String(60))
    aggregate_id: Mapped[str] = mapped_column(String(100))
    sequence: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    target_subscriber_id: Mapped[uuid.UUID | None]
    dispatched_at: Mapped[datetime | None]


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    enabled: Mapped[bool] = mapped_column(server_default="true")
    paused: Mapped[bool] = mapped_column(server_default="false")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    max_in_flight: Mapped[int | None]
    breaker_state: Mapped[str] = mapped_column(String(10), server_default="closed")
    consecutive_failures: Mapped[int] = mapped_column(server_default="0")
    breaker_open_until: Mapped[datetime | None]
    breaker_trips: Mapped[int] = mapped_column(server_default="0")
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    subscriber_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(100))
    aggregate: Mapped[str] = mapped_column(String(170))
    sequence: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int]
    claims: Mapped[int]
    next_attempt_at: Mapped[datetime]
    ready: Mapped[bool]
    leased_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    delivery_id: Mapped[uuid.UUID]
    attempt: Mapped[int]
    started_at: Mapped[datetime]
    duration_ms: Mapped[float]
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))


class ScheduledJobRow(Base):
    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    cron: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool]
    next_run_at: Mapped[datetime]
    running_until: Mapped[datetime | None]
    running_owner: Mapped[str | None] = mapped_column(String(100))
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(12))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[float | None]
    run_count: Mapped[int] = mapped_column(BigInteger)
    failure_count: Mapped[int] = mapped_column(BigInteger)


class DeliveryPolicy(Base):
    __tablename__ = "delivery_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    retry_schedule: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DeliveryPromotion(Base):
    __tablename__ = "delivery_promotions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID]
    subscriber_id: Mapped[uuid.UUID]
    aggregate: Mapped[str] = mapped_column(String(170))
