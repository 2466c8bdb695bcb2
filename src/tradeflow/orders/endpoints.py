"""`/v1/orders`, `/v1/tax-rates`, `/v1/invoices`.

Buyers see and act on their own company's orders and invoices only; another company's
(or tenant's) objects are 404, never 403, so their existence does not leak.
Updates and transitions need `If-Match` with the order's ETag (`"<version>"`):
missing → 428, stale → 412.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import Idempotency, claim, claim_before_body
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.orders import service, taxes
from tradeflow.orders.errors import InvoiceNotFound
from tradeflow.orders.rendering import InvoiceDocument, amount_due, render_html, render_pdf
from tradeflow.orders.repository import OrdersRepository
from tradeflow.orders.schemas import (
    DecisionIn,
    InvoiceOut,
    OrderCreate,
    OrderOut,
    OrderPatch,
    OrderSummaryOut,
    TaxRateIn,
    TaxRateOut,
    TaxRatePatch,
)
from tradeflow.orders.states import OrderStatus

router = APIRouter()

OrdersRead = Annotated[Principal, require_scopes("orders:read")]
OrdersWrite = Annotated[Principal, require_scopes("orders:write")]
InvoicesRead = Annotated[Principal, require_scopes("invoices:read")]
TaxWrite = Annotated[Principal, require_scopes("invoices:write")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The order\'s ETag from its last read, e.g. `"3"` (required).',
    ),
]
OrderId = Annotated[uuid.UUID, Path(description="The order's id.")]
InvoiceId = Annotated[uuid.UUID, Path(description="The invoice's id.")]


def _with_etag(order: OrderOut) -> JSONResponse:
    return JSONResponse(
        order.model_dump(mode="json"), headers={"ETag": service.etag(order.version)}
    )


async def _order_claim(
    request: Request, principal: OrdersWrite, session: TenantSession
) -> Idempotency | None:
    # A dependency, so a replay answers before the body is validated into an OrderCreate.
    return await claim_before_body(
        request, session, tenant_id=principal.tenant_id, caller=service.caller_of(principal)
    )


# -- orders -------------------------------------------------------------------------------------
@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    tags=["orders"],
    responses=problems(400, 401, 403, 409, 413, 422, 429),
)
async def create_order(
    body: OrderCreate,
    request: Request,
    principal: OrdersWrite,
    session: TenantSession,
    claimed: Annotated[Idempotency | None, Depends(_order_claim)],
) -> JSONResponse:
    """Place an order. Requires `Idempotency-Key`: a retry with the same key and body returns
    the stored response; the same key with another body is 422; while the first is running, 409.

    Lines are priced for the customer now and frozen on the order. Over the buyer's spending
    limit the order is `pending_approval`, else `placed`. Invalid lines answer 422 with an
    `errors` list naming each field (`lines.<i>.sku`, `lines.<i>.quantity`, `currency`, …).
    """
    idem = claimed or await claim(
        request,
        session,
        tenant_id=principal.tenant_id,
        caller=service.caller_of(principal),
        required=True,
    )
    order = await service.place_order(session, principal, body)
    # The ETag is stored with the response, so a replay carries it too.
    return await idem.save(
        201, order, location=f"/v1/orders/{order.id}", etag=service.etag(order.version)
    )


@router.get(
    "/orders",
    response_model=Page[OrderSummaryOut],
    tags=["orders"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_orders(
    principal: OrdersRead,
    session: TenantSession,
    page: PageParams,
    customer_id: Annotated[uuid.UUID | None, Query(description="Only this customer's.")] = None,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this state.")] = None,
    created_from: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    created_to: Annotated[datetime | None, Query(description="Created before.")] = None,
) -> Page[OrderSummaryOut]:
    """Orders, newest first. Buyers see their own company's only."""
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            return Page(items=[], next_cursor=None)
        customer_id = principal.customer_id
    rows, cursor = await OrdersRepository(session, principal.tenant_id).list_orders(
        page,
        customer_id=customer_id,
        status=status.value if status else None,
        created_from=created_from,
        created_to=created_to,
    )
    return Page(items=[OrderSummaryOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    tags=["orders"],
    responses=problems(401, 403, 404, 429),
)
async def get_order(
    order_id: OrderId, principal: OrdersRead, session: TenantSession
) -> JSONResponse:
    """One order with its frozen lines; the `ETag` header is what `If-Match` needs."""
    return _with_etag(await service.get_order(session, principal, order_id))


@router.patch(
    "/orders/{order_id}",
    response_model=OrderOut,
    tags=["orders"],
    responses=problems(401, 403, 404, 412, 422, 428, 429),
)
async def patch_order(
    order_id: OrderId,
    body: OrderPatch,
    principal: OrdersWrite,
    session: TenantSession,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Change the order's `reference` or `notes`. Needs `If-Match`."""
    return _with_etag(await service.apply_patch(session, principal, order_id, if_match, body))


_ACTION_DOCS = {
    "approve": "Approve an order waiting for approval (an approver of the ordering company).",
    "reject": "Reject an order waiting for approval (an approver of the ordering company).",
    "confirm": "Confirm the order (seller staff): checks the customer's credit limit "
    "(open receivables + this order), then issues the invoice with the next gap-free number; "
    "the order ends `invoiced`. Over the limit → 409 `credit-limit-exceeded`.",
    "cancel": "Cancel the order. Buyers may cancel until the seller confirms; staff also after "
    "invoicing while nothing is paid (the invoice becomes void).",
    "fulfil": "Mark a paid order as fulfilled (seller staff).",
}


def _transition_endpoint(
    action: Literal["approve", "reject", "confirm", "cancel", "fulfil"],
) -> None:
    async def endpoint(
        order_id: OrderId,
        principal: OrdersWrite,
        session: TenantSession,
        if_match: IfMatch = None,
        body: Annotated[DecisionIn | None, Body()] = None,
    ) -> JSONResponse:
        order = await service.transition(
            session,
            principal,
            order_id,
            action,
            if_match=if_match,
            reason=body.reason if body else None,
        )
        return _with_etag(order)

    endpoint.__doc__ = _ACTION_DOCS[action] + " Needs `If-Match`; an illegal move is 409."
    router.add_api_route(
        f"/orders/{{order_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=OrderOut,
        tags=["orders"],
        name=f"{action}_order",
        summary=f"{action.capitalize()} an order",
        responses=problems(401, 403, 404, 409, 412, 422, 428, 429),
    )


_transition_endpoint("approve")
_transition_endpoint("reject")
_transition_endpoint("confirm")
_transition_endpoint("cancel")
_transition_endpoint("fulfil")


# -- tax rates ----------------------------------------------------------------------------------
@router.get(
    "/tax-rates",
    response_model=Page[TaxRateOut],
    tags=["tax rates"],
    responses=problems(400, 401, 403, 429),
)
async def list_tax_rates(
    principal: OrdersRead,
    session: TenantSession,
    page: PageParams,
    active: Annotated[bool | None, Query(description="Only active (or inactive) rates.")] = None,
) -> Page[TaxRateOut]:
    """The seller's tax rates; orders use the default unless a line names another `tax_code`."""
    rows, cursor = await OrdersRepository(session, principal.tenant_id).list_tax_rates(
        page, active=active
    )
    return Page(items=[TaxRateOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/tax-rates",
    status_code=201,
    response_model=TaxRateOut,
    tags=["tax rates"],
    responses=problems(400, 401, 403, 409, 422, 429),
)
async def create_tax_rate(
    body: TaxRateIn, request: Request, principal: TaxWrite, session: TenantSession
) -> JSONResponse:
    """Add a tax rate (percent, up to 4 decimals). `is_default` makes it the default, replacing
    the previous one. Accepts `Idempotency-Key`."""
    idem = await claim(
        request,
        session,
        tenant_id=principal.tenant_id,
        caller=service.caller_of(principal),
        required=False,
    )
    row = await taxes.create_tax_rate(session, principal.tenant_id, body)
    out = TaxRateOut.model_validate(row).model_dump(mode="json")
    return await idem.save(201, out, location=f"/v1/tax-rates/{row.id}")


@router.get(
    "/tax-rates/{tax_rate_id}",
    response_model=TaxRateOut,
    tags=["tax rates"],
    responses=problems(401, 403, 404, 429),
)
async def get_tax_rate(
    tax_rate_id: uuid.UUID, principal: OrdersRead, session: TenantSession
) -> TaxRateOut:
    """One tax rate."""
    return TaxRateOut.model_validate(
        await taxes.get_tax_rate(session, principal.tenant_id, tax_rate_id)
    )


@router.patch(
    "/tax-rates/{tax_rate_id}",
    response_model=TaxRateOut,
    tags=["tax rates"],
    responses=problems(401, 403, 404, 422, 429),
)
async def patch_tax_rate(
    tax_rate_id: uuid.UUID, body: TaxRatePatch, principal: TaxWrite, session: TenantSession
) -> TaxRateOut:
    """Rename a rate, make it the default, or (de)activate it. The percentage never changes:
    create a new code instead."""
    row = await taxes.update_tax_rate(session, principal.tenant_id, tax_rate_id, body)
    return TaxRateOut.model_validate(row)


# -- invoices -----------------------------------------------------------------------------------
async def _invoice_doc(
    session: TenantSession, principal: Principal, invoice_id: uuid.UUID
) -> InvoiceDocument:
    repo = OrdersRepository(session, principal.tenant_id)
    invoice = await repo.invoice(invoice_id)
    if invoice is None or (principal.is_buyer and invoice.customer_id != principal.customer_id):
        raise InvoiceNotFound(f"No invoice {invoice_id}.")
    order = await repo.order(invoice.order_id)
    lines = await repo.order_lines(invoice.order_id)
    return InvoiceDocument(invoice, lines, order.reference if order else None)


def _invoice_out(doc: InvoiceDocument) -> InvoiceOut:
    inv = doc.invoice
    data = {c: getattr(inv, c) for c in InvoiceOut.model_fields if hasattr(inv, c)}
    return InvoiceOut(
        **data,
        amount_due_minor=amount_due(inv),
        html_url=f"/v1/invoices/{inv.id}.html",
        pdf_url=f"/v1/invoices/{inv.id}.pdf",
    )


@router.get(
    "/invoices",
    response_model=Page[InvoiceOut],
    tags=["invoices"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_invoices(
    principal: InvoicesRead,
    session: TenantSession,
    page: PageParams,
    customer_id: Annotated[uuid.UUID | None, Query(description="Only this customer's.")] = None,
    status: Annotated[
        Literal["open", "partially_paid", "paid", "refunded", "void"] | None,
        Query(description="Only invoices in this state."),
    ] = None,
    order_id: Annotated[uuid.UUID | None, Query(description="The invoice of this order.")] = None,
) -> Page[InvoiceOut]:
    """Invoices, newest first. Buyers see their own company's only."""
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            return Page(items=[], next_cursor=None)
        customer_id = principal.customer_id
    rows, cursor = await OrdersRepository(session, principal.tenant_id).list_invoices(
        page, customer_id=customer_id, status=status, order_id=order_id
    )
    return Page(
        items=[_invoice_out(InvoiceDocument(r, [], None)) for r in rows], next_cursor=cursor
    )


@router.get(
    "/invoices/{invoice_id}.html",
    tags=["invoices"],
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, **problems(401, 403, 404, 429)},
)
async def invoice_html(
    invoice_id: InvoiceId, principal: InvoicesRead, session: TenantSession
) -> Response:
    """The invoice as an HTML page."""
    doc = await _invoice_doc(session, principal, invoice_id)
    return Response(render_html(doc), media_type="text/html; charset=utf-8")


@router.get(
    "/invoices/{invoice_id}.pdf",
    tags=["invoices"],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **problems(401, 403, 404, 429)},
)
async def invoice_pdf(
    invoice_id: InvoiceId, principal: InvoicesRead, session: TenantSession
) -> Response:
    """The invoice as a PDF (A4)."""
    doc = await _invoice_doc(session, principal, invoice_id)
    # Layout is CPU work (tens of ms): keep it off the event loop.
    return Response(
        await run_in_threadpool(render_pdf, doc),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{doc.invoice.number}.pdf"'},
    )


@router.get(
    "/invoices/{invoice_id}",
    response_model=InvoiceOut,
    tags=["invoices"],
    responses=problems(401, 403, 404, 429),
)
async def get_invoice(
    invoice_id: InvoiceId, principal: InvoicesRead, session: TenantSession
) -> InvoiceOut:
    """One invoice: number, amounts, what is paid and due, and links to its renderings."""
    return _invoice_out(await _invoice_doc(session, principal, invoice_id))
