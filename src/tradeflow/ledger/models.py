"""The ledger's tables: the chart of accounts, journal entries and their lines.

Entries and lines are insert-only. The database enforces the rules (see
`migrations/versions/ledger_0001_journal.py`): lines are positive on exactly one
side, an entry's lines are written in the entry's own transaction only, an
entry balances at commit, and UPDATE/DELETE are refused.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import CHAR, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.models import Base, IdMixin, TenantMixin


class Account(IdMixin, TenantMixin, Base):
    """An account of a tenant's chart; `system_key` marks the ones posting rules use."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "system_key"),
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="type"
        ),
        CheckConstraint("normal_balance IN ('debit', 'credit')", name="normal_balance"),
    )

    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    normal_balance: Mapped[str] = mapped_column(String(6))
    system_key: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(500), server_default="")
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class Entry(IdMixin, TenantMixin, Base):
    """A journal entry: one currency, two or more lines whose debits equal their credits."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "source_event_id"),
        UniqueConstraint("reverses_entry_id"),
        ForeignKeyConstraint(
            ["tenant_id", "reverses_entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]
        ),
        CheckConstraint("kind IN ('event', 'reversal', 'manual')", name="kind"),
    )

    kind: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str] = mapped_column(CHAR(3))
    description: Mapped[str] = mapped_column(String(500))
    source_event_id: Mapped[uuid.UUID | None] = mapped_column()
    source_event_type: Mapped[str | None] = mapped_column(String(100))
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column()
    refs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    occurred_at: Mapped[datetime] = mapped_column()
    posted_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    posted_by: Mapped[str | None] = mapped_column(String(80))


class Line(IdMixin, TenantMixin, Base):
    """One side of an entry on one account, optionally tagged with the customer it concerns."""

    __tablename__ = "ledger_lines"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "entry_id"], ["ledger_entries.tenant_id", "ledger_entries.id"]
        ),
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["ledger_accounts.tenant_id", "ledger_accounts.id"]
        ),
        UniqueConstraint("entry_id", "line_no"),
        CheckConstraint("debit_minor >= 0 AND credit_minor >= 0", name="not_negative"),
        CheckConstraint("(debit_minor > 0) <> (credit_minor > 0)", name="one_side"),
        Index(
            "ix_ledger_lines_account",
            "tenant_id",
            "account_id",
            "currency",
            "posted_at",
            "id",
            postgresql_include=["debit_minor", "credit_minor"],
        ),
    )

    entry_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(SmallInteger)
    account_id: Mapped[uuid.UUID] = mapped_column()
    currency: Mapped[str] = mapped_column(CHAR(3))
    debit_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    credit_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    customer_id: Mapped[uuid.UUID | None] = mapped_column()
    memo: Mapped[str | None] = mapped_column(String(500))
    # Copied from the entry by the database (trigger), so statements read one index.
    posted_at: Mapped[datetime] = mapped_column()
