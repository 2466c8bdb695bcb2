"""Processor settlements: what the payment processor reported captured and refunded, per payment.

Two records of the processor's word, both compared with the ledger by reconciliation:

* what payments *heard*: each processor fact is an event (`payment.captured`,
  `refund.succeeded`) carrying the payment's running totals; the handler below
  keeps the largest totals seen per payment, so it is idempotent and
  indifferent to order;
* what the processor's own books *list* (`payments.settlements`: captures,
  refunds and fees, fetched outside any transaction at each run) — which
  also holds what Tradeflow never heard of, e.g. a capture made at the
  processor directly (`compare_processor_books`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.integrations.models import ProcessorSettlement
from tradeflow.payments.settlements import ProcessorBooks

if TYPE_CHECKING:
    from tradeflow.integrations.reconciliation import Books, Mismatch


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


# -- the processors' own books --------------------------------------------------------------------


@dataclass
class ChargeTotals:
    """One processor charge as its listing shows it (amounts summed over its movements)."""

    processor: str
    charge_id: str
    reference: str | None
    currency: str
    captured_minor: int = 0
    refunded_minor: int = 0
    fee_minor: int = 0
    last_at: datetime | None = None


def charge_totals(listings: list[ProcessorBooks]) -> dict[tuple[str, str], ChargeTotals]:
    out: dict[tuple[str, str], ChargeTotals] = {}
    for listing in listings:
        for item in listing.items:
            key = (listing.processor, item.charge_id)
            totals = out.setdefault(
                key,
                ChargeTotals(
                    listing.processor, item.charge_id, item.payment_reference, item.currency
                ),
            )
            if item.kind == "capture":
                totals.captured_minor += item.amount_minor
            else:
                totals.refunded_minor += item.amount_minor
            totals.fee_minor += item.fee_minor
            if totals.last_at is None or item.created_at > totals.last_at:
                totals.last_at = item.created_at
    return out


def compare_processor_books(
    books: Books,
    settled: dict[str, Settlement],
    listings: list[ProcessorBooks],
    *,
    since: datetime,
    cutoff: datetime,
) -> tuple[list[Mismatch], dict[str, int]]:
    """The ledger against the processors' own listings (fetched outside any transaction).

    * `processor_capture_unknown` — the processor captured money for a charge Tradeflow never
      heard of (no payment reported it, no entry booked it);
    * `processor_amount_differs` / `processor_refund_differs` / `processor_fee_differs` — a
      booked payment whose captured, refunded or fee total differs from the processor's;
    * `processor_unreadable` — the listing could not be read (down, refused, too long).

    Only payments first booked inside the listing's window (`since`, with an hour's margin)
    are compared by amount: older ones may have movements from before the window.
    Movements after `cutoff` (the grace window) are still settling and left out.
    """
    from tradeflow.integrations.reconciliation import Mismatch

    out: list[Mismatch] = []
    checked: dict[str, int] = {}
    for listing in listings:
        if listing.error is not None:
            out.append(
                Mismatch(
                    "processor_unreadable",
                    "processor",
                    listing.processor,
                    {"error": listing.error[:500]},
                )
            )
        elif listing.supported:
            checked[f"{listing.processor}:settlements"] = len(listing.items)
    comparable_after = since + timedelta(hours=1)
    for totals in charge_totals(listings).values():
        ref = totals.reference
        if (totals.last_at is not None and totals.last_at > cutoff) or (
            ref is not None and ref in books.recent_docs
        ):
            continue
        booked = books.payments.get(ref) if ref is not None else None
        detail: dict[str, Any] = {
            "processor": totals.processor,
            "charge_id": totals.charge_id,
            "reference": ref,
            "currency": totals.currency,
        }
        if booked is None:
            if totals.captured_minor and (ref is None or ref not in settled):
                out.append(
                    Mismatch(
                        "processor_capture_unknown",
                        "processor_charge",
                        totals.charge_id,
                        {**detail, "captured_minor": totals.captured_minor},
                    )
                )
            continue
        assert ref is not None
        first = books.payment_first_posted.get(ref)
        if first is None or first < comparable_after:
            continue
        for kind, ours, theirs in (
            ("processor_amount_differs", booked[0], totals.captured_minor),
            (
                "processor_refund_differs",
                books.refunded_by_payment.get(ref, 0),
                totals.refunded_minor,
            ),
            ("processor_fee_differs", books.payment_fees.get(ref, 0), totals.fee_minor),
        ):
            if ours != theirs:
                out.append(
                    Mismatch(
                        kind,
                        "payment",
                        ref,
                        {**detail, "ledger_minor": ours, "processor_minor": theirs},
                    )
                )
    return out, checked
