"""Processor settlements: what the payment processor reported captured and refunded, per payment.

The payments context publishes each processor fact as an event
(`payment.captured`, `refund.succeeded`) carrying the payment's running
totals. The handler below keeps the largest totals seen per payment, so it
is idempotent and indifferent to order. Reconciliation compares this record
of the processor's word with the ledger and with connected systems.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.integrations.models import ProcessorSettlement


@dataclass(frozen=True, slots=True)
class Settlement:
    payment_id: str
    captured_minor: int
    refunded_minor: int
    currency: str
    recent: bool  # changed inside the grace window: still settling


async def record_fact(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    *,
    at: datetime,
) -> None:
    captured = refunded = 0
    if event_type == "payment.captured":
        captured = int(payload.get("amount_captured_total_minor") or payload["amount_minor"])
    elif event_type == "refund.succeeded":
        refunded = int(payload.get("amount_refunded_total_minor") or payload["amount_minor"])
    else:
        return
    table = ProcessorSettlement.__table__
    stmt = insert(ProcessorSettlement).values(
        tenant_id=tenant_id,
        payment_id=str(payload["payment_id"]),
        currency=str(payload["currency"]),
        captured_minor=captured,
        refunded_minor=refunded,
        first_at=at,
        last_at=at,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "payment_id"],
            set_={
                "captured_minor": func.greatest(
                    table.c.captured_minor, stmt.excluded.captured_minor
                ),
                "refunded_minor": func.greatest(
                    table.c.refunded_minor, stmt.excluded.refunded_minor
                ),
                "last_at": func.greatest(table.c.last_at, stmt.excluded.last_at),
            },
        )
    )


async def processor_settlements(
    session: AsyncSession, tenant_id: uuid.UUID, *, cutoff: datetime
) -> dict[str, Settlement]:
    rows = (
        await session.execute(
            select(ProcessorSettlement).where(ProcessorSettlement.tenant_id == tenant_id)
        )
    ).scalars()
    return {
        r.payment_id: Settlement(
            payment_id=r.payment_id,
            captured_minor=r.captured_minor,
            refunded_minor=r.refunded_minor,
            currency=r.currency,
            recent=r.last_at > cutoff,
        )
        for r in rows
    }
