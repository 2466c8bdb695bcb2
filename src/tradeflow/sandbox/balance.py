"""The sandbox's books: fees on captures and the balance transactions a processor lists.

Like a card processor, the sandbox keeps a fee of every capture — a percentage
plus a fixed amount, per account (default 2.9 % + 30 minor units, set through
the control plane) — and none of a refund (the fee of the refunded capture is
not returned). Every capture and refund writes one balance transaction, the
rows `GET /v1/balance_transactions` lists oldest first: what a reconciliation
compares with its own ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tradeflow.sandbox.store import new_id

DEFAULT_FEE_BPS = 290
DEFAULT_FEE_FIXED = 30


def capture_fee(amount: int, *, bps: int, fixed: int) -> int:
    """`bps` basis points of `amount`, rounded half up, plus `fixed` (all minor units)."""
    return (amount * bps + 5_000) // 10_000 + fixed


async def record(
    conn: AsyncConnection,
    *,
    account_id: str,
    kind: str,
    charge_id: str,
    source_id: str,
    amount: int,
    fee: int,
    currency: str,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO sandbox_balance_transactions (id, account_id, type, charge_id, "
            "source_id, amount, fee, currency) VALUES (:id, :a, :t, :c, :s, :amount, :fee, :ccy)"
        ),
        {
            "id": new_id("txn"),
            "a": account_id,
            "t": kind,
            "c": charge_id,
            "s": source_id,
            "amount": amount,
            "fee": fee,
            "ccy": currency,
        },
    )


async def list_transactions(
    conn: AsyncConnection,
    account_id: str,
    *,
    since: datetime | None,
    starting_after: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the account's balance transactions, oldest first; (rows, has_more)."""
    rows = (
        await conn.execute(
            text(
                "SELECT t.*, c.reference AS charge_reference FROM sandbox_balance_transactions t "
                "JOIN sandbox_charges c ON c.id = t.charge_id WHERE t.account_id = :a "
                "AND (CAST(:since AS timestamptz) IS NULL OR t.created_at >= :since) "
                "AND t.seq > COALESCE((SELECT seq FROM sandbox_balance_transactions "
                "WHERE id = :after AND account_id = :a), 0) ORDER BY t.seq LIMIT :n"
            ),
            {"a": account_id, "since": since, "after": starting_after, "n": limit + 1},
        )
    ).all()
    out = [
        {
            "id": r.id,
            "object": "balance_transaction",
            "type": r.type,
            "charge": r.charge_id,
            "charge_reference": r.charge_reference,
            "source": r.source_id,
            "amount": r.amount,
            "fee": r.fee,
            "net": r.amount - r.fee if r.type == "capture" else -r.amount,
            "currency": r.currency,
            "created": r.created_at.isoformat().replace("+00:00", "Z"),
        }
        for r in rows[:limit]
    ]
    return out, len(rows) > limit


async def set_fees(conn: AsyncConnection, account_id: str, *, bps: int, fixed: int) -> bool:
    result = await conn.execute(
        text("UPDATE sandbox_accounts SET fee_bps = :b, fee_fixed = :f WHERE id = :id"),
        {"id": account_id, "b": bps, "f": fixed},
    )
    return bool(result.rowcount)
