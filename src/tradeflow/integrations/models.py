"""Integrations tables: connector instances and their pull state, the external-id map,
conflicts, reconciliations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import CHAR, JSONB
from sqlalchemy.orm import Mapped, mapped_column

# The shared auth module loads the `tenants` table that every TenantMixin foreign key
# names; without it a worker process that never served a request could not flush.
from tradeflow.identity import auth as _auth  # noqa: F401
from tradeflow.kit.keyring import register_encrypted_column
from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin

register_encrypted_column("connector_instances", "secrets_ciphertext")


class ConnectorInstance(IdMixin, TenantMixin, TimestampMixin, Base):
    """One enabled connector of a tenant: its plugin (`kind`), config and sync state."""

    __tablename__ = "connector_instances"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index(
            "uq_connector_instances_subscriber_id",
            "subscriber_id",
            unique=True,
            postgresql_where=text("subscriber_id IS NOT NULL"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)  # non-secret settings
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)  # keyring token of a JSON object
    enabled: Mapped[bool] = mapped_column(default=True)
    paused: Mapped[bool] = mapped_column(default=False)
    subscriber_id: Mapped[uuid.UUID | None] = mapped_column()  # its events-engine subscriber
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


class ExternalRef(IdMixin, TenantMixin, TimestampMixin, Base):
    """Our id ↔ their id for one document at one connector, and what each side last held.

    `pending` is `{"fields", "sent_at"}` of a create whose outcome we have not seen yet;
    `lease_*` fence one sync of the document at a time (across workers).
    """

    __tablename__ = "external_refs"
    __table_args__ = (
        UniqueConstraint(
            "connector_id", "object_type", "our_id", name="uq_external_refs_connector_object"
        ),
        Index(
            "uq_external_refs_connector_external",
            "connector_id",
            "object_type",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index("ix_external_refs_tenant_id_id", "tenant_id", "id"),
        Index(
            "ix_external_refs_unsynced",
            "connector_id",
            "updated_at",
            postgresql_where=text("state <> 'synced'"),
        ),
    )

    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connector_instances.id", ondelete="CASCADE")
    )
    object_type: Mapped[str] = mapped_column(String(30))
    our_id: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(200))
    remote_version: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    last_ours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_theirs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column()
    lease_token: Mapped[uuid.UUID | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column()


class SyncConflict(IdMixin, TenantMixin, TimestampMixin, Base):
    """Both sides changed the same shared field(s): held until someone resolves it."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        Index(
            "uq_sync_conflicts_open_ref",
            "ref_id",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
        ),
        Index("ix_sync_conflicts_tenant_id_status_id", "tenant_id", "status", "id"),
    )

    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connector_instances.id", ondelete="CASCADE")
    )
    ref_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("external_refs.id", ondelete="CASCADE"))
    object_type: Mapped[str] = mapped_column(String(30))
    our_id: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str | None] = mapped_column(String(200))
    remote_version: Mapped[str | None] = mapped_column(String(200))
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # [{field, base, ours, theirs}]
    ours: Mapped[dict[str, Any]] = mapped_column(JSONB)  # our whole document (mapped)
    theirs: Mapped[dict[str, Any]] = mapped_column(JSONB)  # their whole record
    status: Mapped[str] = mapped_column(String(12), default="open")
    resolution: Mapped[str | None] = mapped_column(String(12))
    resolved_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column()


class ConnectorPull(TenantMixin, TimestampMixin, Base):
    """The pull side of one connector instance: where it continues, when it runs next, how
    the last pull went. `running_*` lease one pull at a time across workers and the CLI."""

    __tablename__ = "connector_pulls"
    __table_args__ = (
        PrimaryKeyConstraint("connector_id"),
        Index("ix_connector_pulls_next_pull_at", "next_pull_at"),
    )

    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connector_instances.id", ondelete="CASCADE")
    )
    cursor: Mapped[str | None] = mapped_column(Text)
    next_pull_at: Mapped[datetime | None] = mapped_column()
    requested_at: Mapped[datetime | None] = mapped_column()
    running_until: Mapped[datetime | None] = mapped_column()
    running_token: Mapped[uuid.UUID | None] = mapped_column()
    last_started_at: Mapped[datetime | None] = mapped_column()
    last_finished_at: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column()
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # pulled, unchanged, applied, conflicted, ignored, unknown, created, rejected
    last_counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    totals: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    # The latest records we could not place: [{object_type, external_id, reason}], bounded.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)


class ReconciliationRun(IdMixin, TenantMixin, Base):
    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        Index("ix_reconciliation_runs_tenant_id_id", "tenant_id", "id"),
        Index(
            "ix_reconciliation_runs_queued",
            "started_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    trigger: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="running")
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    mismatch_count: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)  # kind → count
    checked: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)  # what was compared
    error: Mapped[str | None] = mapped_column(Text)
    grace_seconds: Mapped[float] = mapped_column(default=0.0)


class ReconciliationMismatch(IdMixin, TenantMixin, Base):
    __tablename__ = "reconciliation_mismatches"
    __table_args__ = (Index("ix_reconciliation_mismatches_run_id_id", "run_id", "id"),)

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reconciliation_runs.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(60))
    connector_id: Mapped[uuid.UUID | None] = mapped_column()
    object_type: Mapped[str] = mapped_column(String(30))
    object_id: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ProcessorSettlement(TenantMixin, Base):
    """Per payment, the totals the processor reported (captured, refunded), from payment events.

    Totals are cumulative in the events, so the row keeps the largest seen: a
    duplicate or late event changes nothing.
    """

    __tablename__ = "processor_settlements"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "payment_id"),)

    payment_id: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(CHAR(3))
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at: Mapped[datetime] = mapped_column()
    last_at: Mapped[datetime] = mapped_column()
