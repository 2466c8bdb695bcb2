"""`/v1/payments`, `/v1/refunds`, `/v1/processors` and `/v1/processor-webhooks/{processor}`.

Creating a payment, capturing and refunding call the processor, so these
endpoints do not use the one-transaction `TenantSession`: they record,
commit, call, and record the outcome (see `payments.service`). Buyers pay
their own company's invoices and see their own payments and refunds only
(another company's are 404); captures, refunds and processor settings are
for the seller's staff.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import Idempotency, claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.payments import captures, configuration, inbound, refunds, service
from tradeflow.payments.errors import PaymentNotFound, RefundNotFound
from tradeflow.payments.processors.registry import available, processor_class
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import (
    CaptureCreate,
    PaymentCreate,
    PaymentOut,
    PaymentStatus,
    ProcessorConfigIn,
    ProcessorOut,
    ProcessorWebhookAccepted,
    RefundCreate,
    RefundOut,
    RefundStatus,
)
from tradeflow.payments.views import payment_out, payments_out, refund_out

router = APIRouter()

PaymentsRead = Annotated[Principal, require_scopes("payments:read")]
PaymentsWrite = Annotated[Principal, require_scopes("payments:write")]
ProcessorsAdmin = Annotated[Principal, require_scopes("tenant:write", "payments:write")]
PaymentId = Annotated[uuid.UUID, Path(description="The payment's id.")]
RefundId = Annotated[uuid.UUID, Path(description="The refund's id.")]
ProcessorName = Annotated[
    str, Path(description="The processor plugin's name, e.g. `sandbox`.", max_length=60)
]

Begin = Callable[[AsyncSession, Idempotency], Awaitable[service.Begun]]
Finish = Callable[[AsyncSession, service.Begun, service.Outcome], Awaitable[service.Finished]]


async def _record_call_record(
    request: Request, principal: Principal, begin: Begin, finish: Finish
) -> JSONResponse:
    """Step 1 (commit), the processor call outside any transaction, step 3 (commit)."""
    db: Database = request.app.state.db
    async with db.tenant_session(principal.tenant_id) as session:
        idem = await claim(
            request,
            session,
            tenant_id=principal.tenant_id,
            caller=service.caller_of(principal),
            required=False,
        )
        await service.guard_request(session, principal.tenant_id, idem, service.render_operation)
        begun = await begin(session, idem)
        await session.commit()
    outcome = await service.call(begun)
    async with db.tenant_session(principal.tenant_id) as session:
        done = await finish(session, begun, outcome)
        if done.error is not None:
            await session.commit()  # the removal of what step 1 wrote
            raise done.error
        response = await dataclasses.replace(idem, session=session).save(
            done.status_code, done.body, location=done.location
        )
        await session.commit()
    return response


def _staff(principal: Principal, action: str) -> None:
    service.staff_only(principal, action)


# -- payments ----------------------------------------------------------------------------------
@router.post(
    "/payments",
    status_code=201,
    response_model=PaymentOut,
    tags=["payments"],
    responses={
        202: {
            "model": PaymentOut,
            "description": "The processor did not answer in time; "
            "the outcome is being confirmed with it (`status: processing`).",
        },
        **problems(400, 401, 403, 409, 413, 422, 429, 502, 503),
    },
)
async def create_payment(
    body: PaymentCreate, request: Request, principal: PaymentsWrite
) -> JSONResponse:
    """Pay an invoice through the tenant's processor: creates a payment intent and charges it.

    `capture_method: automatic` (default) captures at once; `manual` only authorises
    (capture later with `POST /v1/payments/{id}/capture`). A decline is a `201` with
    `status: failed` and `failure_code`. If the processor cannot be reached the answer is
    `503` and nothing is recorded — retry. If it does not answer in time the answer is `202`
    with `status: processing` and the outcome is confirmed with the processor shortly (never
    by charging again). Accepts `Idempotency-Key`.
    """
    keyring = request.app.state.keyring

    async def begin(session: AsyncSession, idem: Idempotency) -> service.Begun:
        return await service.begin_payment(
            session, keyring, principal=principal, body=body, idem=idem
        )

    return await _record_call_record(request, principal, begin, service.finish_payment)


@router.get(
    "/payments",
    response_model=Page[PaymentOut],
    tags=["payments"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_payments(
    principal: PaymentsRead,
    session: TenantSession,
    page: PageParams,
    invoice_id: Annotated[uuid.UUID | None, Query(description="Only for this invoice.")] = None,
    order_id: Annotated[uuid.UUID | None, Query(description="Only for this order.")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(description="Only this customer's.")] = None,
    status: Annotated[PaymentStatus | None, Query(description="Only in this status.")] = None,
    processor: Annotated[str | None, Query(max_length=60, description="Only this one's.")] = None,
) -> Page[PaymentOut]:
    """Payments, newest first. Buyers see their own company's only."""
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            return Page(items=[], next_cursor=None)
        customer_id = principal.customer_id
    repo = PaymentsRepository(session, principal.tenant_id)
    rows, cursor = await repo.list_payments(
        page,
        invoice_id=invoice_id,
        order_id=order_id,
        customer_id=customer_id,
        status=status,
        processor=processor,
    )
    return Page(items=await payments_out(repo, rows), next_cursor=cursor)


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    tags=["payments"],
    responses=problems(401, 403, 404, 429),
)
async def get_payment(
    payment_id: PaymentId, principal: PaymentsRead, session: TenantSession
) -> PaymentOut:
    """One payment with its captures."""
    repo = PaymentsRepository(session, principal.tenant_id)
    payment = await repo.payment(
        payment_id, customer_id=principal.customer_id if principal.is_buyer else None
    )
    if payment is None:
        raise PaymentNotFound(f"No payment {payment_id}.")
    return await payment_out(repo, payment)


@router.post(
    "/payments/{payment_id}/capture",
    response_model=PaymentOut,
    tags=["payments"],
    responses={
        202: {"model": PaymentOut, "description": "No answer in time; being confirmed."},
        **problems(400, 401, 403, 404, 409, 413, 422, 429, 502, 503),
    },
)
async def capture_payment(
    payment_id: PaymentId,
    request: Request,
    principal: PaymentsWrite,
    body: CaptureCreate | None = None,
) -> JSONResponse:
    """Capture all (no body) or part (`amount_minor`) of an authorised payment.

    Several partial captures may follow one another until the authorised amount is
    captured. Staff only. Accepts `Idempotency-Key`.
    """
    _staff(principal, "capture payments")
    keyring = request.app.state.keyring
    capture = body or CaptureCreate()

    async def begin(session: AsyncSession, idem: Idempotency) -> service.Begun:
        return await captures.begin_capture(
            session, keyring, principal=principal, payment_id=payment_id, body=capture, idem=idem
        )

    return await _record_call_record(request, principal, begin, captures.finish_capture)


# -- refunds -----------------------------------------------------------------------------------
@router.post(
    "/refunds",
    status_code=201,
    response_model=RefundOut,
    tags=["refunds"],
    responses={
        202: {"model": RefundOut, "description": "No answer in time; being confirmed."},
        **problems(400, 401, 403, 409, 413, 422, 429, 502, 503),
    },
)
async def create_refund(
    body: RefundCreate, request: Request, principal: PaymentsWrite
) -> JSONResponse:
    """Refund all or part of what a payment captured. Staff only. Accepts `Idempotency-Key`."""
    _staff(principal, "refund payments")
    keyring = request.app.state.keyring

    async def begin(session: AsyncSession, idem: Idempotency) -> service.Begun:
        return await refunds.begin_refund(
            session, keyring, principal=principal, body=body, idem=idem
        )

    return await _record_call_record(request, principal, begin, refunds.finish_refund)


@router.get(
    "/refunds",
    response_model=Page[RefundOut],
    tags=["refunds"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_refunds(
    principal: PaymentsRead,
    session: TenantSession,
    page: PageParams,
    payment_id: Annotated[uuid.UUID | None, Query(description="Only of this payment.")] = None,
    invoice_id: Annotated[uuid.UUID | None, Query(description="Only for this invoice.")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(description="Only this customer's.")] = None,
    status: Annotated[RefundStatus | None, Query(description="Only in this status.")] = None,
) -> Page[RefundOut]:
    """Refunds, newest first. Buyers see their own company's only."""
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            return Page(items=[], next_cursor=None)
        customer_id = principal.customer_id
    repo = PaymentsRepository(session, principal.tenant_id)
    rows, cursor = await repo.list_refunds(
        page, payment_id=payment_id, invoice_id=invoice_id, customer_id=customer_id, status=status
    )
    return Page(items=[await refund_out(repo, r) for r in rows], next_cursor=cursor)


@router.get(
    "/refunds/{refund_id}",
    response_model=RefundOut,
    tags=["refunds"],
    responses=problems(401, 403, 404, 429),
)
async def get_refund(
    refund_id: RefundId, principal: PaymentsRead, session: TenantSession
) -> RefundOut:
    """One refund."""
    repo = PaymentsRepository(session, principal.tenant_id)
    refund = await repo.refund(
        refund_id, customer_id=principal.customer_id if principal.is_buyer else None
    )
    if refund is None:
        raise RefundNotFound(f"No refund {refund_id}.")
    return await refund_out(repo, refund)


# -- processors --------------------------------------------------------------------------------
@router.get(
    "/processors",
    response_model=list[ProcessorOut],
    tags=["processors"],
    responses=problems(401, 403, 429),
)
async def list_processors(
    request: Request, principal: PaymentsRead, session: TenantSession
) -> list[ProcessorOut]:
    """Installed processor plugins and this tenant's configuration of each (secrets never shown)."""
    _staff(principal, "see processor settings")
    rows = {
        r.processor: r for r in await PaymentsRepository(session, principal.tenant_id).configs()
    }
    base_url = request.app.state.settings.base_url
    return [
        configuration.view(name, rows.get(name), base_url=base_url) for name in sorted(available())
    ]


@router.get(
    "/processors/{name}",
    response_model=ProcessorOut,
    tags=["processors"],
    responses=problems(401, 403, 404, 429),
)
async def get_processor(
    name: ProcessorName, request: Request, principal: PaymentsRead, session: TenantSession
) -> ProcessorOut:
    """One processor plugin and this tenant's configuration of it."""
    _staff(principal, "see processor settings")
    processor_class(name)
    row = await PaymentsRepository(session, principal.tenant_id).config(name)
    return configuration.view(name, row, base_url=request.app.state.settings.base_url)


@router.put(
    "/processors/{name}",
    response_model=ProcessorOut,
    tags=["processors"],
    responses=problems(400, 401, 403, 404, 409, 413, 422, 429),
)
async def configure_processor(
    name: ProcessorName,
    body: ProcessorConfigIn,
    request: Request,
    principal: ProcessorsAdmin,
    session: TenantSession,
) -> ProcessorOut:
    """Enable (or disable) and configure a processor for this tenant.

    `config` is validated against the plugin's `config_schema`. Secret fields are
    write-only and encrypted at rest: they are never returned, and leaving one out keeps
    the stored value. URLs Tradeflow will call (the sandbox's `base_url`) must not be
    private, loopback or link-local addresses unless the operator allows them
    (`TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE`): 422 naming the field. Needs `tenant:write` and
    `payments:write` (owner, admin).
    """
    _staff(principal, "configure processors")
    row = await configuration.configure(
        session,
        request.app.state.keyring,
        tenant_id=principal.tenant_id,
        name=name,
        body=body,
        allow_private=request.app.state.settings.webhooks_allow_private,
    )
    return configuration.view(name, row, base_url=request.app.state.settings.base_url)


# -- inbound processor webhooks ----------------------------------------------------------------
@router.post(
    "/processor-webhooks/{name}",
    status_code=202,
    response_model=ProcessorWebhookAccepted,
    tags=["processors"],
    responses=problems(400, 401, 404, 413),
)
async def receive_processor_webhook(name: ProcessorName, request: Request) -> JSONResponse:
    """Where a processor sends its webhooks (no bearer token: the signature authenticates).

    A bad or missing signature is 401; a timestamp outside the tolerance is 400. A verified
    event is stored once by its event id and answered `202`; a repeat is `202` too
    (`duplicate: true`) and is not applied again. The worker applies it.
    """
    received = await inbound.receive(
        request.app.state.db,
        request.app.state.keyring,
        processor=name,
        body=await request.body(),
        headers=request.headers,
    )
    return JSONResponse(
        ProcessorWebhookAccepted(duplicate=received.duplicate).model_dump(), status_code=202
    )
