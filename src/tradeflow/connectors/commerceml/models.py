"""Tables of the CommerceML exchange: 1C's sessions, uploaded files, the audit of each
exchange, and which order changes each instance has had acknowledged."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

# The tenants table every TenantMixin foreign key names.
from tradeflow.identity import auth as _auth  # noqa: F401
from tradeflow.kit.models import Base, IdMixin, TenantMixin


class ExchangeSession(IdMixin, TenantMixin, Base):
    """A session 1C opened with `mode=checkauth`; its cookie value is kept only as a hash."""

    __tablename__ = "commerceml_sessions"
    __table_args__ = (
        Index("uq_commerceml_sessions_token_hash", "token_hash", unique=True),
        Index("ix_commerceml_sessions_connector_id", "connector_id"),
    )

    # The foreign key to connector_instances (integrations) lives in the migration only.
    connector_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64))
    exchange_type: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class Upload(IdMixin, TenantMixin, Base):
    """One chunk of a file 1C sent with `mode=file` (a file arrives in chunks of file_limit)."""

    __tablename__ = "commerceml_uploads"
    __table_args__ = (
        Index("ix_commerceml_uploads_session_id_filename", "session_id", "filename", "seq"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("commerceml_sessions.id", ondelete="CASCADE")
    )
    filename: Mapped[str] = mapped_column(String(300))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column()


class Exchange(IdMixin, TenantMixin, Base):
    """The audit of one exchange step: an import, an order query, its acknowledgement."""

    __tablename__ = "commerceml_exchanges"
    __table_args__ = (
        Index(
            "ix_commerceml_exchanges_tenant_id_connector_id_id", "tenant_id", "connector_id", "id"
        ),
        Index("ix_commerceml_exchanges_connector_id", "connector_id"),
    )

    # The foreign key to connector_instances (integrations) lives in the migration only.
    connector_id: Mapped[uuid.UUID] = mapped_column()
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    exchange_type: Mapped[str] = mapped_column(String(10))  # catalog, sale
    mode: Mapped[str] = mapped_column(String(10))  # import, query, success, file
    source: Mapped[str] = mapped_column(String(10))  # http, cli
    filename: Mapped[str | None] = mapped_column(String(300))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # success, failure; an import of several steps is `running` until its last; an order
    # query is `sent` until 1C acknowledges it (`acknowledged`).
    status: Mapped[str] = mapped_column(String(12))
    position: Mapped[int] = mapped_column(Integer, default=0)  # rows of the file applied
    counts: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # For an order query: [{"order_id", "version"}] sent, acknowledged by `mode=success`.
    orders: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class OrderChange(TenantMixin, Base):
    """The latest version of an order a seller's 1C should receive (from order events)."""

    __tablename__ = "commerceml_order_changes"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "order_id"),
        Index("ix_commerceml_order_changes_tenant_id_changed_at", "tenant_id", "changed_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column()


class OrderAck(TenantMixin, Base):
    """The order version one instance's 1C acknowledged (`mode=success`)."""

    __tablename__ = "commerceml_order_acks"
    __table_args__ = (PrimaryKeyConstraint("connector_id", "order_id"),)

    # The foreign key to connector_instances (integrations) lives in the migration only.
    connector_id: Mapped[uuid.UUID] = mapped_column()
    order_id: Mapped[uuid.UUID] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    acked_at: Mapped[datetime] = mapped_column()
