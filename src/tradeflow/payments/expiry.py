"""Expiring manual-capture authorisations: void at the processor what nobody captured in time.

Card networks let an authorisation hold the buyer's funds for about a week; after
that the issuer may drop it and a late capture fails. So a `manual` payment still
`requires_capture` after `TRADEFLOW_PAYMENTS_AUTHORIZATION_EXPIRY_SECONDS`
(default 7 days) is voided — the hold ends, the payment becomes `canceled` with
`failure_code: authorization_expired`, `payment.canceled` is published, and the
invoice is open for another payment.

Each void runs like every other processor call (see `service`): record a `void`
operation and commit; call the processor with `tradeflow-void-<operation id>` as
the idempotency key, outside any transaction; record the outcome. A timeout
leaves the operation `unknown` for the resolver, which asks the processor and
applies what it finds. A payment with any open operation (a capture in flight)
is left alone, and one the processor refused to void is tried again an hour later.

Only authorisations nothing was captured from are voided: a partially captured
payment keeps its remainder until someone captures or the processor drops it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments import configuration, facts
from tradeflow.payments.configuration import LoadedConfig
from tradeflow.payments.models import ProcessorOperation
from tradeflow.payments.processors.base import (
    ChargeState,
    ProcessorError,
    ProcessorOutcomeUnknown,
    ProcessorRejected,
    ProcessorUnavailable,
)
from tradeflow.payments.repository import PaymentsRepository, expired_authorizations
from tradeflow.payments.service import mark_unknown

log = structlog.get_logger(__name__)

# After the processor refused a void, wait this long before asking again.
RETRY_REFUSED_AFTER = timedelta(hours=1)


@dataclass
class ExpiryReport:
    voided: list[uuid.UUID] = field(default_factory=list)
    unknown: list[uuid.UUID] = field(default_factory=list)
    refused: list[uuid.UUID] = field(default_factory=list)
    skipped: list[uuid.UUID] = field(default_factory=list)


async def expire_authorizations(
    db: Database,
    keyring: Keyring,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    limit: int = 100,
) -> ExpiryReport:
    """Void every uncaptured manual authorisation created before `now - older_than`."""
    now = now or utcnow()
    async with db.system_session() as session:
        due = await expired_authorizations(
            session,
            created_before=now - older_than,
            refused_since=now - RETRY_REFUSED_AFTER,
            limit=limit,
        )
    report = ExpiryReport()
    for tenant_id, payment_id in due:
        outcome = await expire_one(db, keyring, tenant_id, payment_id, older_than=older_than)
        getattr(report, outcome).append(payment_id)
    if due:
        log.info(
            "payments_authorizations_expired",
            voided=len(report.voided),
            unknown=len(report.unknown),
            refused=len(report.refused),
        )
    return report


async def expire_one(
    db: Database,
    keyring: Keyring,
    tenant_id: uuid.UUID,
    payment_id: uuid.UUID,
    *,
    older_than: timedelta,
) -> str:
    """One payment: record the void, commit, call, record the outcome. Returns the report key."""
    # 1. record the intent
    async with db.tenant_session(tenant_id) as session:
        begun = await _begin(session, keyring, tenant_id, payment_id)
        if begun is None:
            return "skipped"
        op_id, charge_id, loaded = begun
        await session.commit()
    # 2. call, outside any transaction
    outcome: ChargeState | ProcessorError
    try:
        async with loaded.build() as processor:
            outcome = await processor.void(
                charge_id,
                idempotency_key=facts.operation_key(op_id, "void"),
                reference=str(op_id),
            )
    except ProcessorError as exc:
        outcome = exc
    except Exception as exc:  # a plugin bug after sending: the void may have happened
        log.exception("processor_void_crashed", payment_id=str(payment_id))
        outcome = ProcessorOutcomeUnknown(f"processor plugin error: {exc!r}")
    # 3. record the outcome
    async with db.tenant_session(tenant_id) as session:
        result = await _finish(session, tenant_id, payment_id, op_id, outcome, older_than)
        await session.commit()
    log.info("payment_authorization_expiry", payment_id=str(payment_id), outcome=result)
    return result


async def _begin(
    session: AsyncSession, keyring: Keyring, tenant_id: uuid.UUID, payment_id: uuid.UUID
) -> tuple[uuid.UUID, str, LoadedConfig] | None:
    repo = PaymentsRepository(session, tenant_id)
    payment = await repo.payment(payment_id, for_update=True)
    # Re-checked under the row lock: a capture may have started since the scan.
    if (
        payment is None
        or payment.status != "requires_capture"
        or payment.processor_payment_id is None
        or await repo.operations([payment.id], open_only=True)
    ):
        return None
    loaded = await configuration.for_payment(
        session, keyring, tenant_id=tenant_id, name=payment.processor
    )
    op = ProcessorOperation(
        id=uuid7(),
        tenant_id=tenant_id,
        payment_id=payment.id,
        kind="void",
        amount_minor=payment.amount_minor,
        status="pending",
        checks=0,
    )
    await repo.add(op)
    return op.id, payment.processor_payment_id, loaded


async def _finish(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    payment_id: uuid.UUID,
    op_id: uuid.UUID,
    outcome: ChargeState | ProcessorError,
    older_than: timedelta,
) -> str:
    repo = PaymentsRepository(session, tenant_id)
    payment = await repo.payment(payment_id, for_update=True)
    op = await repo.operation(op_id, for_update=True)
    assert payment is not None
    assert op is not None
    if isinstance(outcome, ChargeState):
        if outcome.status == "canceled" and payment.processor_status != "canceled":
            facts.mark_expired(payment, window=older_than)
        await facts.apply_charge(session, repo, payment, outcome)
        # The processor answered: canceled settles the operation; anything else (it was
        # captured meanwhile) is the processor's truth, now applied, and the void is moot.
        facts.settle(op, "succeeded" if outcome.status == "canceled" else "failed")
        return "voided" if outcome.status == "canceled" else "refused"
    if isinstance(outcome, ProcessorUnavailable) and op.status == "pending":
        await repo.delete_operation(op.id)  # never sent: the next run tries again
        return "skipped"
    if isinstance(outcome, ProcessorRejected):
        facts.settle(op, "failed", error_code=outcome.code, error_message=outcome.message[:2000])
        return "refused"
    if op.status == "pending":
        mark_unknown(op, outcome)
    return "unknown"
