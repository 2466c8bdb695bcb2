"""Resolving calls whose outcome we do not know — by asking the processor, never by resending.

An operation is open when its call timed out (`unknown`) or when the process
making it stopped between its two transactions (`pending` for longer than any
call can take). For each, the resolver looks the object up by *our*
reference (the payment or refund id we sent), outside any transaction, then
applies what it found through `facts`:

* found → the processor's state is applied like any other fact;
* not found, and the call is older than the grace period → it never reached
  the processor: the payment or refund fails (`not_processed`), said once;
* not found yet, or the processor could not be asked → check again later,
  with a growing interval.

It runs as the scheduled job `payments.resolve` (every few seconds, once
across all workers) and is callable directly (`resolve_due`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments import configuration, facts, metrics
from tradeflow.payments.models import ProcessorOperation
from tradeflow.payments.processors.base import ChargeState, ProcessorError, RefundState
from tradeflow.payments.repository import OPEN_OPERATION, PaymentsRepository, due_operations

log = structlog.get_logger(__name__)

# A `pending` operation older than this lost its process (calls time out well before).
STALE_AFTER = timedelta(minutes=2)
# Not found at the processor for this long after the call: it never arrived.
NOT_FOUND_GRACE = timedelta(minutes=2)
MAX_INTERVAL = timedelta(hours=1)


@dataclass
class ResolveReport:
    checked: int = 0
    resolved: int = 0
    retry: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)


def next_interval(checks: int) -> timedelta:
    return min(timedelta(seconds=2 * 2 ** min(checks, 20)), MAX_INTERVAL)


async def resolve_due(
    db: Database,
    keyring: Keyring,
    *,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
    not_found_grace: timedelta = NOT_FOUND_GRACE,
    limit: int = 100,
) -> ResolveReport:
    """Resolve every open operation that is due; returns what happened to each."""
    now = now or utcnow()
    async with db.system_session() as session:
        due = await due_operations(session, now=now, stale_before=now - stale_after, limit=limit)
    report = ResolveReport()
    for tenant_id, op_id in due:
        outcome = await resolve_one(
            db, keyring, tenant_id, op_id, now=now, not_found_grace=not_found_grace
        )
        report.checked += 1
        report.outcomes[str(op_id)] = outcome
        if outcome != "settled":
            metrics.RESOLVED.labels(outcome).inc()
        if outcome == "retry":
            report.retry += 1
        elif outcome != "settled":
            report.resolved += 1
    if due:
        log.info("payments_resolved", checked=report.checked, resolved=report.resolved)
    return report


async def resolve_one(
    db: Database,
    keyring: Keyring,
    tenant_id: uuid.UUID,
    op_id: uuid.UUID,
    *,
    now: datetime,
    not_found_grace: timedelta = NOT_FOUND_GRACE,
) -> str:
    # 1. what to ask (short read)
    async with db.tenant_session(tenant_id) as session:
        repo = PaymentsRepository(session, tenant_id)
        op = await repo.operation(op_id)
        if op is None or op.status not in OPEN_OPERATION:
            return "settled"
        payment = await repo.payment(op.payment_id)
        assert payment is not None
        loaded = await configuration.for_payment(
            session, keyring, tenant_id=tenant_id, name=payment.processor
        )
        kind, payment_id, refund_id = op.kind, payment.id, op.refund_id
    # 2. ask, outside any transaction
    found: ChargeState | RefundState | None
    try:
        async with loaded.build() as processor:
            if kind == "refund":
                assert refund_id is not None
                found = await processor.find_refund(reference=str(refund_id))
            else:
                found = await processor.find_payment(reference=str(payment_id))
    except ProcessorError as exc:
        log.info("payment_resolve_ask_failed", operation_id=str(op_id), error=str(exc))
        return await _retry_later(db, tenant_id, op_id, now=now, error=str(exc))
    # 3. apply
    async with db.tenant_session(tenant_id) as session:
        repo = PaymentsRepository(session, tenant_id)
        payment = await repo.payment(payment_id, for_update=True)
        refund = await repo.refund(refund_id, for_update=True) if refund_id else None
        op = await repo.operation(op_id, for_update=True)
        if payment is None or op is None or op.status not in OPEN_OPERATION:
            return "settled"
        old_enough = now - op.created_at >= not_found_grace
        outcome = "retry"
        if isinstance(found, ChargeState):
            if (
                op.kind == "void"
                and found.status == "canceled"
                and payment.processor_status != "canceled"
            ):
                facts.mark_expired(payment)  # only the expiry job voids
            await facts.apply_charge(session, repo, payment, found)
            if op.kind in ("capture", "void") and op.status in OPEN_OPERATION and old_enough:
                facts.settle(op, "failed", error_code="not_processed")
        elif isinstance(found, RefundState) and refund is not None:
            await facts.apply_refund(session, repo, payment, refund, found)
        elif old_enough:
            message = "The processor never received this request."
            facts.settle(op, "failed", error_code="not_processed", error_message=message)
            if op.kind == "authorize":
                await facts.fail_unprocessed_payment(
                    session, payment, code="not_processed", message=message
                )
            elif op.kind == "refund" and refund is not None:
                await facts.fail_unprocessed_refund(
                    session, payment, refund, code="not_processed", message=message
                )
        if op.status in OPEN_OPERATION:
            _schedule(op, now=now)
        else:
            outcome = op.status
        await session.commit()
    log.info("payment_operation_resolved", operation_id=str(op_id), kind=kind, outcome=outcome)
    return outcome


def _schedule(op: ProcessorOperation, *, now: datetime) -> None:
    op.status = "unknown"
    op.checks += 1
    op.next_check_at = now + next_interval(op.checks)


async def _retry_later(
    db: Database, tenant_id: uuid.UUID, op_id: uuid.UUID, *, now: datetime, error: str
) -> str:
    async with db.tenant_session(tenant_id) as session:
        op = await PaymentsRepository(session, tenant_id).operation(op_id, for_update=True)
        if op is None or op.status not in OPEN_OPERATION:
            return "settled"
        _schedule(op, now=now)
        op.error_message = error[:2000]
        await session.commit()
    return "retry"
