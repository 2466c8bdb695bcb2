"""Payment use cases: intents, captures, refunds — each a record, a call, and an outcome.

Every call that changes something at a processor runs in three steps, and
the processor is never called inside a database transaction:

1. **record** (transaction 1): validate, write the payment/refund and a
   `processor_operations` row (`pending`), commit;
2. **call** (no transaction): the processor, with the idempotency key
   `tradeflow-<kind>-<operation id>`;
3. **outcome** (transaction 2): apply the answer through `facts`; or, when
   the processor was *certainly* not reached or refused the request, delete
   what step 1 wrote (nothing half-written, and the client may retry); or,
   when the answer is *unknown* (timeout), mark the operation `unknown` for
   the resolver, which asks the processor and never sends the call again.

The API's own `Idempotency-Key` spans the steps: the key is claimed in step 1
and stored with the response in step 3; in between, the operation row holds
it (same key again → 409 in flight). The endpoints drive the steps; the
functions here never commit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.errors import Forbidden, NotFound, ProblemError
from tradeflow.events import publish
from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import (
    Idempotency,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotentReplay,
    StoredResponse,
)
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments import configuration, facts, metrics
from tradeflow.payments.configuration import LoadedConfig
from tradeflow.payments.errors import (
    InvalidPaymentRequest,
    InvoiceNotPayable,
    PaymentStateConflict,
    ProcessorDown,
    ProcessorRefused,
)
from tradeflow.payments.models import Payment, ProcessorOperation
from tradeflow.payments.processors.base import (
    AuthorizeRequest,
    ChargeState,
    ProcessorError,
    ProcessorOutcomeUnknown,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundState,
)
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import (
    PaymentCreate,
)
from tradeflow.payments.views import payment_out, refund_out

log = structlog.get_logger(__name__)

# When an unanswered call is first looked up; later checks back off (see resolver).
FIRST_CHECK_AFTER = timedelta(seconds=2)
PAYABLE_INVOICE_STATUSES = frozenset({"open", "partially_paid"})

Outcome = ChargeState | RefundState | ProcessorError


def caller_of(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def staff_only(principal: Principal, action: str) -> None:
    if principal.is_buyer:
        raise Forbidden(f"Only the seller's staff can {action}.")


@dataclass(frozen=True)
class Begun:
    """What step 1 recorded, carried to the call and to step 3."""

    kind: str
    tenant_id: uuid.UUID
    payment_id: uuid.UUID
    operation_id: uuid.UUID
    processor: LoadedConfig
    amount_minor: int
    refund_id: uuid.UUID | None = None
    processor_payment_id: str | None = None
    authorize: AuthorizeRequest | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Finished:
    status_code: int
    body: dict[str, Any]
    location: str
    error: ProblemError | None = None  # raise after committing step 3


# -- the API idempotency key across the steps -------------------------------------------------


async def guard_request(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    idem: Idempotency,
    render: Callable[[PaymentsRepository, ProcessorOperation], Awaitable[Finished]],
) -> None:
    """A key already held by an operation: in flight → 409; settled → its current result."""
    if idem.key is None:
        return
    repo = PaymentsRepository(session, tenant_id)
    op = await repo.operation_by_request(idem.caller, idem.key)
    if op is None:
        return
    if op.request_fingerprint != idem.fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idem.key!r} was first used with a different request."
        )
    if op.status == "pending":
        raise IdempotencyKeyInFlight(
            f"A request with Idempotency-Key {idem.key!r} is still talking to the processor.",
            headers={"Retry-After": "1"},
        )
    # Settled, but its process never stored the response (it stopped between the steps).
    done = await render(repo, op)
    raise IdempotentReplay(StoredResponse(done.status_code, done.body, done.location))


def new_operation(
    *,
    tenant_id: uuid.UUID,
    payment_id: uuid.UUID,
    kind: str,
    amount_minor: int,
    idem: Idempotency,
    refund_id: uuid.UUID | None = None,
) -> ProcessorOperation:
    return ProcessorOperation(
        id=uuid7(),
        tenant_id=tenant_id,
        payment_id=payment_id,
        refund_id=refund_id,
        kind=kind,
        amount_minor=amount_minor,
        status="pending",
        checks=0,
        request_caller=idem.caller if idem.key else None,
        request_key=idem.key,
        request_fingerprint=idem.fingerprint if idem.key else None,
    )


# -- step 2: the call --------------------------------------------------------------------------


async def call(begun: Begun) -> Outcome:
    """Make the processor call of `begun`, outside any transaction; never raises."""
    started = time.perf_counter()
    outcome = await _call(begun)
    processor = begun.processor.processor
    metrics.PROCESSOR_CALL_LATENCY.labels(processor, begun.kind).observe(
        time.perf_counter() - started
    )
    metrics.PROCESSOR_CALLS.labels(processor, begun.kind, _outcome_label(outcome)).inc()
    return outcome


def _outcome_label(outcome: Outcome) -> str:
    if isinstance(outcome, ProcessorUnavailable):
        return "unavailable"
    if isinstance(outcome, ProcessorRejected):
        return "rejected"
    if isinstance(outcome, ProcessorError):
        return "unknown"
    if outcome.status == "failed":
        return "declined"
    return "answered"


async def _call(begun: Begun) -> Outcome:
    key = facts.operation_key(begun.operation_id, begun.kind)
    try:
        async with begun.processor.build() as processor:
            if begun.kind == "authorize":
                assert begun.authorize is not None
                return await processor.authorize(begun.authorize)
            assert begun.processor_payment_id is not None
            if begun.kind == "capture":
                return await processor.capture(
                    begun.processor_payment_id,
                    amount_minor=begun.amount_minor,
                    idempotency_key=key,
                    reference=str(begun.operation_id),
                )
            assert begun.refund_id is not None
            return await processor.refund(
                begun.processor_payment_id,
                amount_minor=begun.amount_minor,
                idempotency_key=key,
                reference=str(begun.refund_id),
                reason=begun.reason,
            )
    except ProcessorError as exc:
        log.info("processor_call_failed", kind=begun.kind, error=type(exc).__name__, msg=str(exc))
        return exc
    except Exception as exc:  # a plugin bug after sending: the call may have happened
        log.exception("processor_call_crashed", kind=begun.kind)
        return ProcessorOutcomeUnknown(f"processor plugin error: {exc!r}")


def mark_unknown(op: ProcessorOperation, exc: ProcessorError) -> None:
    op.status = "unknown"
    op.error_message = str(exc)[:2000]
    op.next_check_at = utcnow() + FIRST_CHECK_AFTER


def processor_down(begun: Begun) -> ProcessorDown:
    return ProcessorDown(
        f"The {begun.processor.processor} processor could not be reached; nothing was "
        "recorded and nothing was charged. Retry later (the same Idempotency-Key is fine).",
        headers={"Retry-After": "5"},
    )


def refused(
    exc: ProcessorRejected, *, conflict_codes: frozenset[str] = frozenset()
) -> ProblemError:
    if exc.field is not None:
        return InvalidPaymentRequest(exc.message, field=exc.field, processor_code=exc.code)
    if exc.code in conflict_codes:
        return PaymentStateConflict(exc.message, processor_code=exc.code)
    return ProcessorRefused(exc.message, processor_code=exc.code)


# -- payment intents ----------------------------------------------------------------------------


async def begin_payment(
    session: AsyncSession,
    keyring: Keyring,
    *,
    principal: Principal,
    body: PaymentCreate,
    idem: Idempotency,
) -> Begun:
    from tradeflow.orders import service as orders_service

    tenant_id = principal.tenant_id
    repo = PaymentsRepository(session, tenant_id)
    try:
        invoice = await orders_service.get_invoice(session, body.invoice_id, tenant_id=tenant_id)
    except NotFound:
        invoice = None
    if invoice is None or (principal.is_buyer and invoice.customer_id != principal.customer_id):
        raise InvalidPaymentRequest(f"No invoice {body.invoice_id}.", field="invoice_id")
    if invoice.status not in PAYABLE_INVOICE_STATUSES:
        raise InvoiceNotPayable(
            f"Invoice {invoice.number} is {invoice.status}; only open or partially paid "
            "invoices take payments.",
            invoice_status=invoice.status,
        )
    if body.currency is not None and body.currency != invoice.currency:
        raise InvalidPaymentRequest(
            f"Invoice {invoice.number} is in {invoice.currency}, not {body.currency}.",
            field="currency",
        )
    processor = await configuration.usable(
        session, keyring, tenant_id=tenant_id, name=body.processor
    )
    await repo.lock_invoice(invoice.id)
    # Everything not failed holds its amount (less refunds) against the invoice, including
    # authorisations not yet captured, so two intents cannot both take the open balance.
    held = sum(
        p.amount_minor - p.amount_refunded_minor
        for p in await repo.invoice_payments(invoice.id)
        if p.status not in ("failed", "canceled")
    )
    open_minor = invoice.total_minor - held
    if open_minor <= 0:
        raise InvoiceNotPayable(
            f"Invoice {invoice.number} has nothing left to pay ({held} held by other payments).",
            invoice_status=invoice.status,
        )
    amount = body.amount_minor if body.amount_minor is not None else open_minor
    if amount > open_minor:
        raise InvalidPaymentRequest(
            f"At most {open_minor} is open on invoice {invoice.number}.", field="amount_minor"
        )
    payment = Payment(
        id=uuid7(),
        tenant_id=tenant_id,
        invoice_id=invoice.id,
        order_id=invoice.order_id,
        customer_id=invoice.customer_id,
        processor=processor.processor,
        processor_version=0,
        status="processing",
        capture_method=body.capture_method,
        amount_minor=amount,
        currency=invoice.currency,
        amount_captured_minor=0,
        amount_refunded_minor=0,
        fee_minor=0,
        payment_method=body.payment_method,
        description=body.description,
        announced=False,
        created_by=principal.user_id,
    )
    await repo.add(payment)
    op = new_operation(
        tenant_id=tenant_id, payment_id=payment.id, kind="authorize", amount_minor=amount, idem=idem
    )
    await repo.add(op)
    return Begun(
        kind="authorize",
        tenant_id=tenant_id,
        payment_id=payment.id,
        operation_id=op.id,
        processor=processor,
        amount_minor=amount,
        authorize=AuthorizeRequest(
            reference=str(payment.id),
            idempotency_key=facts.operation_key(op.id, "authorize"),
            amount_minor=amount,
            currency=invoice.currency,
            payment_method=body.payment_method,
            capture=body.capture_method == "automatic",
            description=body.description or f"Invoice {invoice.number}",
        ),
    )


async def finish_payment(session: AsyncSession, begun: Begun, outcome: Outcome) -> Finished:
    repo = PaymentsRepository(session, begun.tenant_id)
    payment = await repo.payment(begun.payment_id, for_update=True)
    op = await repo.operation(begun.operation_id, for_update=True)
    assert payment is not None
    assert op is not None
    location = f"/v1/payments/{payment.id}"
    if isinstance(outcome, ChargeState):
        await facts.apply_charge(session, repo, payment, outcome)
        facts.settle(op, "failed" if outcome.status == "failed" else "succeeded")
        return Finished(201, (await payment_out(repo, payment)).model_dump(mode="json"), location)
    if isinstance(outcome, ProcessorUnavailable | ProcessorRejected) and op.status == "pending":
        await repo.remove(payment)  # its operation goes with it
        error = (
            refused(outcome) if isinstance(outcome, ProcessorRejected) else processor_down(begun)
        )
        return Finished(error.status, {}, location, error=error)
    assert isinstance(outcome, ProcessorError)
    if op.status == "pending":
        mark_unknown(op, outcome)
    for event in facts.announce(payment):
        await publish(session, event, tenant_id=payment.tenant_id, aggregate_id=payment.id)
    # 202: the intent exists, its outcome is being confirmed with the processor.
    return Finished(202, (await payment_out(repo, payment)).model_dump(mode="json"), location)


async def render_operation(repo: PaymentsRepository, op: ProcessorOperation) -> Finished:
    """The response a settled operation's request stands for (payment or refund now)."""
    if op.kind == "refund":
        assert op.refund_id is not None
        refund = await repo.refund(op.refund_id)
        assert refund is not None
        return Finished(
            201,
            (await refund_out(repo, refund)).model_dump(mode="json"),
            f"/v1/refunds/{refund.id}",
        )
    payment = await repo.payment(op.payment_id)
    assert payment is not None
    status = 201 if op.kind == "authorize" else 200
    if op.status == "unknown":
        status = 202
    return Finished(
        status,
        (await payment_out(repo, payment)).model_dump(mode="json"),
        f"/v1/payments/{payment.id}",
    )
