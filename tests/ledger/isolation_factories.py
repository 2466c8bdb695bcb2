"""Tenant B's ledger objects for the tenant-isolation walk (tests/test_tenant_isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from ledger.support import invoice_payload, make_customer, post, rows
from tradeflow.ledger import service


async def _entry(ctx: Any) -> dict[str, str]:
    tenant = ctx.tenant_b.id
    result = await post(
        ctx.db, tenant, "invoice.issued", invoice_payload(customer_id=uuid.uuid4(), total=1_000)
    )
    ctx.remember("ledger_entry_b", result.entry_id)
    return {"entry_id": str(result.entry_id)}


async def _account(ctx: Any) -> dict[str, str]:
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        accounts = await service.ensure_chart(s, tenant_id=tenant)
        await s.commit()
    return {"account_id": str(accounts["receivables"])}


async def _customer(ctx: Any) -> dict[str, str]:
    return {"customer_id": str(await make_customer(ctx.db, ctx.tenant_b.id))}


FACTORIES = {
    "/v1/ledger/entries/{entry_id}": _entry,
    "/v1/ledger/entries/{entry_id}/reverse": _entry,
    "/v1/ledger/accounts/{account_id}": _account,
    "/v1/ledger/accounts/{account_id}/statement": _account,
    "/v1/ledger/customers/{customer_id}/balance": _customer,
}


async def check_untouched(ctx: Any, client: AsyncClient) -> None:
    entry_id = ctx.recalled("ledger_entry_b")
    if entry_id is None:
        return
    reversed_ = await rows(
        ctx.db, "SELECT id FROM ledger_entries WHERE reverses_entry_id = :e", e=entry_id
    )
    assert reversed_ == [], "tenant A reversed tenant B's journal entry"
