"""Helpers for the ledger tests: tenants, events to book, and reading the books with SQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text

from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.ledger import service
from tradeflow.ledger.schemas import PostingResult


async def make_tenant(db: Database) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with db.system_session() as s:
        await s.execute(
            text("INSERT INTO tenants (id, name, slug) VALUES (:id, 'Books Ltd', :slug)"),
            {"id": tenant_id, "slug": f"books-{tenant_id.hex[:12]}"},
        )
        await s.commit()
    return tenant_id


def invoice_payload(
    *,
    customer_id: uuid.UUID,
    total: int,
    tax: int = 0,
    currency: str = "EUR",
    invoice_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """An `invoice.issued` payload as the orders context publishes it."""
    return {
        "invoice_id": str(invoice_id or uuid.uuid4()),
        "number": "INV-2025-000001",
        "order_id": str(uuid.uuid4()),
        "customer_id": str(customer_id),
        "currency": currency,
        "subtotal_minor": total - tax,
        "tax_minor": tax,
        "total_minor": total,
        "due_date": "2025-07-31",
    }


def payment_payload(
    *,
    invoice_id: str | uuid.UUID,
    amount: int,
    currency: str = "EUR",
    fee: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A `payment.captured` / `refund.succeeded` payload as the payments context publishes it."""
    payload: dict[str, Any] = {
        "payment_id": str(uuid.uuid4()),
        "invoice_id": str(invoice_id),
        "order_id": str(uuid.uuid4()),
        "amount_minor": amount,
        "currency": currency,
        **extra,
    }
    if fee is not None:
        payload["fee_minor"] = fee
    return payload


async def post(
    db: Database,
    tenant_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> PostingResult:
    """Book one event in its own transaction, as the event worker does."""
    async with db.tenant_session(tenant_id) as s:
        result = await service.post_event(
            s,
            tenant_id=tenant_id,
            event_id=event_id or uuid7(),
            event_type=event_type,
            payload=payload,
            occurred_at=occurred_at or utcnow(),
        )
        await s.commit()
    return result


def by_code(entry: object) -> dict[str, tuple[int, int]]:
    """An entry's debits and credits summed per account code."""
    out: dict[str, tuple[int, int]] = {}
    for line in entry.lines:  # type: ignore[attr-defined]
        d, c = out.get(line.account_code, (0, 0))
        out[line.account_code] = (d + line.debit_minor, c + line.credit_minor)
    return out


async def read_entry(db: Database, tenant: uuid.UUID, entry_id: uuid.UUID | None) -> object:
    assert entry_id is not None
    async with db.tenant_session(tenant) as s:
        return await service.get_entry(s, tenant_id=tenant, entry_id=entry_id)


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.system_session() as s:
        return list((await s.execute(text(sql), params)).all())


async def check_deferred_constraints(db: Database) -> None:
    """Fire the deferred balance check now (a rolled-back test never reaches its commit)."""
    async with db.system_session() as s:
        await s.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        await s.execute(text("SET CONSTRAINTS ALL DEFERRED"))


async def make_api_key(db: Database, tenant_id: uuid.UUID, scopes: set[str]) -> str:
    """An API key of the tenant holding `scopes`, as its bearer token."""
    from tradeflow.identity import service as identity_service
    from tradeflow.identity.repository import IdentityRepository

    async with db.system_session() as s:
        created = await identity_service.create_api_key(
            IdentityRepository(s, tenant_id), name="ledger tests", scopes=scopes, actor=None
        )
        await s.commit()
    return created.token


async def make_customer(db: Database, tenant_id: uuid.UUID, *, currency: str = "EUR") -> uuid.UUID:
    from tradeflow.customers import service as customers_service
    from tradeflow.customers.schemas import CustomerIn

    async with db.tenant_session(tenant_id) as s:
        customer = await customers_service.create_customer(
            s, tenant_id, CustomerIn(name=f"Buyer {uuid.uuid4().hex[:6]}", currency=currency)
        )
        await s.commit()
    return customer.id
