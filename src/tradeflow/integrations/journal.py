"""Our journal as journal connectors see it: ledger entries with their accounts' names and types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.integrations.plugins import JournalEntry, JournalLine
from tradeflow.kit.pagination import PageRequest
from tradeflow.ledger import service as ledger

LINK_KEYS = ("invoice_id", "invoice_number", "payment_id", "refund_id", "order_id", "customer_id")


async def chart(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, tuple[str, str]]:
    """Account code → (name, type) for the tenant's whole chart."""
    out: dict[str, tuple[str, str]] = {}
    cursor: str | None = None
    while True:
        page = await ledger.list_accounts(
            session, tenant_id=tenant_id, page=PageRequest(cursor=cursor, limit=200)
        )
        for account in page.items:
            out[account.code] = (account.name, account.type.value)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def entry_from_posted(
    payload: dict[str, Any], accounts: dict[str, tuple[str, str]]
) -> JournalEntry:
    """A `ledger.entry_posted` payload (frozen facts of one entry) → a journal entry."""
    currency = str(payload["currency"])
    occurred = datetime.fromisoformat(str(payload["occurred_at"]))
    posted = datetime.fromisoformat(str(payload["posted_at"]))
    lines = []
    for line in sorted(payload["lines"], key=lambda x: int(x["line_no"])):
        code = str(line["account_code"])
        name, kind = accounts.get(code, (code, "equity"))
        lines.append(
            JournalLine(
                account_code=code,
                account_name=name,
                account_type=kind,
                debit_minor=int(line["debit_minor"]),
                credit_minor=int(line["credit_minor"]),
                currency=currency,
            )
        )
    refs = {str(k): str(v) for k, v in (payload.get("refs") or {}).items()}
    links = {k: refs[k] for k in LINK_KEYS if k in refs}
    return JournalEntry(
        id=str(payload["entry_id"]),
        posted_at=posted,
        entry_date=occurred.date(),
        description=str(payload.get("description") or ""),
        source_type=str(payload.get("source_event_type") or payload.get("kind") or "manual"),
        source_id=str(payload.get("source_event_id") or ""),
        lines=tuple(lines),
        links=links,
    )


def entry_from_view(view: Any, accounts: dict[str, tuple[str, str]]) -> JournalEntry:
    """A ledger `EntryOut` → a journal entry (catch-up and reconciliation read these)."""
    payload = {
        "entry_id": view.id,
        "currency": view.currency,
        "occurred_at": view.occurred_at.isoformat(),
        "posted_at": view.posted_at.isoformat(),
        "description": view.description,
        "source_event_type": view.source_event_type,
        "source_event_id": view.source_event_id,
        "kind": view.kind.value if hasattr(view.kind, "value") else view.kind,
        "refs": view.refs,
        "lines": [
            {
                "line_no": line.line_no,
                "account_code": line.account_code,
                "debit_minor": line.debit_minor,
                "credit_minor": line.credit_minor,
            }
            for line in view.lines
        ],
    }
    return entry_from_posted(payload, accounts)
