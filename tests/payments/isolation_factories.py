"""Tenant B's payments objects for the tenant-isolation walk (tests/test_tenant_isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from tradeflow.kit.ids import uuid7
from tradeflow.payments.models import Payment, Refund


async def _payment_and_refund(ctx: Any) -> dict[str, str]:
    """A captured, partly refunded payment of tenant B (rows only: no processor involved)."""
    found = ctx.recalled("payments.ids")
    if found:
        return dict(found)
    tenant = ctx.tenant_b.id
    payment = Payment(
        id=uuid7(),
        tenant_id=tenant,
        invoice_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        processor="sandbox",
        processor_payment_id=f"ch_{uuid.uuid4().hex}",
        processor_status="requires_capture",
        processor_version=1,
        status="requires_capture",
        capture_method="manual",
        amount_minor=1000,
        currency="EUR",
        amount_captured_minor=0,
        amount_refunded_minor=0,
        payment_method="pm_sandbox_ok",
        announced=True,
    )
    refund = Refund(
        id=uuid7(),
        tenant_id=tenant,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        processor="sandbox",
        processor_version=0,
        status="pending",
        amount_minor=100,
        currency="EUR",
    )
    async with ctx.db.tenant_session(tenant) as s:
        s.add(payment)
        await s.flush()
        s.add(refund)
        await s.commit()
    ids = {"payment_id": str(payment.id), "refund_id": str(refund.id)}
    ctx.remember("payments.ids", ids)
    return ids


async def _payment(ctx: Any) -> dict[str, str]:
    return {"payment_id": (await _payment_and_refund(ctx))["payment_id"]}


async def _refund(ctx: Any) -> dict[str, str]:
    return {"refund_id": (await _payment_and_refund(ctx))["refund_id"]}


FACTORIES = {"payment_id": _payment, "refund_id": _refund}

EXEMPT = {
    "/v1/processors/{name}": "a processor plugin's name; each tenant sees its own settings",
    "/v1/processor-webhooks/{name}": "a processor plugin's name; the signature picks the tenant",
}


async def check_untouched(ctx: Any, client: AsyncClient) -> None:
    ids = ctx.recalled("payments.ids")
    if not ids:
        return
    async with ctx.db.tenant_session(ctx.tenant_b.id) as s:
        payment = await s.get(Payment, uuid.UUID(ids["payment_id"]))
        assert payment is not None
        assert payment.status == "requires_capture", "tenant A changed tenant B's payment"
        assert payment.amount_captured_minor == 0
