"""`/v1/ledger`: the chart of accounts, the journal, the trial balance and statements.

Reading needs `ledger:read`; adding accounts, manual entries and reversals needs
`ledger:write`. Entries are never changed or deleted: a correction is a reversing
entry (`POST /v1/ledger/entries/{id}/reverse`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from tradeflow.customers import service as customers_service
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.ledger import service
from tradeflow.ledger.repository import EntryFilters
from tradeflow.ledger.schemas import (
    AccountIn,
    AccountOut,
    AccountType,
    CustomerBalance,
    EntryKind,
    EntryOut,
    ManualEntryIn,
    ReverseIn,
    Statement,
    TrialBalance,
    UtcDatetime,
)

router = APIRouter(prefix="/ledger", tags=["ledger"])

LedgerRead = Annotated[Principal, require_scopes("ledger:read")]
LedgerWrite = Annotated[Principal, require_scopes("ledger:write")]
AccountId = Annotated[uuid.UUID, Path(description="The ledger account's id.")]
EntryId = Annotated[uuid.UUID, Path(description="The journal entry's id.")]
CustomerId = Annotated[uuid.UUID, Path(description="The customer company's id.")]
CurrencyQuery = Annotated[
    str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["EUR"])
]
AsOf = Annotated[
    UtcDatetime | None,
    Query(description="Only what was posted up to this moment (inclusive), ISO 8601 with zone."),
]
PostedFrom = Annotated[
    UtcDatetime | None, Query(description="Posted at or after this moment (ISO 8601).")
]
PostedTo = Annotated[UtcDatetime | None, Query(description="Posted before this moment.")]


def _caller(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


# -- accounts ------------------------------------------------------------------------------------


@router.get(
    "/accounts", response_model=Page[AccountOut], responses=problems(400, 401, 403, 422, 429)
)
async def list_accounts(
    principal: LedgerRead,
    session: TenantSession,
    page: PageParams,
    type: Annotated[AccountType | None, Query(description="Only accounts of this type.")] = None,
) -> Page[AccountOut]:
    """The tenant's chart of accounts, by code. The default chart is created on first use."""
    return await service.list_accounts(session, tenant_id=principal.tenant_id, page=page, type=type)


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountOut,
    responses=problems(400, 401, 403, 409, 413, 422, 429),
)
async def create_account(
    body: AccountIn, request: Request, principal: LedgerWrite, session: TenantSession
) -> JSONResponse:
    """Add an account to the chart (409 if the code is taken). Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    account = await service.create_account(session, tenant_id=principal.tenant_id, body=body)
    return await idem.save(
        201, account.model_dump(mode="json"), location=f"/v1/ledger/accounts/{account.id}"
    )


@router.get(
    "/accounts/{account_id}", response_model=AccountOut, responses=problems(401, 403, 404, 429)
)
async def get_account(
    account_id: AccountId, principal: LedgerRead, session: TenantSession
) -> AccountOut:
    """One account of the chart."""
    return await service.get_account(session, tenant_id=principal.tenant_id, account_id=account_id)


@router.get(
    "/accounts/{account_id}/statement",
    response_model=Statement,
    responses=problems(400, 401, 403, 404, 422, 429),
)
async def account_statement(
    account_id: AccountId,
    principal: LedgerRead,
    session: TenantSession,
    page: PageParams,
    currency: CurrencyQuery = None,
    posted_from: PostedFrom = None,
    posted_to: PostedTo = None,
) -> Statement:
    """The account's lines oldest first, each with the running balance after it (signed to the
    account's normal side). `opening_balance_minor` is the balance before the page's first line.
    An account holding several currencies needs `currency` (422 otherwise)."""
    return await service.account_statement(
        session,
        tenant_id=principal.tenant_id,
        account_id=account_id,
        page=page,
        currency=currency,
        posted_from=posted_from,
        posted_to=posted_to,
    )


# -- entries -------------------------------------------------------------------------------------


@router.get("/entries", response_model=Page[EntryOut], responses=problems(400, 401, 403, 422, 429))
async def list_entries(
    principal: LedgerRead,
    session: TenantSession,
    page: PageParams,
    source_event_id: Annotated[
        uuid.UUID | None, Query(description="The entry that booked this event.")
    ] = None,
    source_event_type: Annotated[
        str | None, Query(max_length=100, description="e.g. `payment.captured`.")
    ] = None,
    kind: Annotated[EntryKind | None, Query()] = None,
    currency: CurrencyQuery = None,
    account_id: Annotated[uuid.UUID | None, Query(description="Touching this account.")] = None,
    customer_id: Annotated[
        uuid.UUID | None, Query(description="With a line for this customer.")
    ] = None,
    invoice_id: Annotated[uuid.UUID | None, Query(description="Booking this invoice.")] = None,
    payment_id: Annotated[uuid.UUID | None, Query(description="Booking this payment.")] = None,
    order_id: Annotated[uuid.UUID | None, Query(description="Booking this order.")] = None,
    posted_from: PostedFrom = None,
    posted_to: PostedTo = None,
) -> Page[EntryOut]:
    """Journal entries, newest first, each with its lines. `?source_event_id=` answers "was this
    event booked, and how?" (at most one entry)."""
    filters = EntryFilters(
        source_event_id=source_event_id,
        source_event_type=source_event_type,
        kind=kind.value if kind else None,
        currency=currency,
        account_id=account_id,
        customer_id=customer_id,
        invoice_id=invoice_id,
        payment_id=payment_id,
        order_id=order_id,
        posted_from=posted_from,
        posted_to=posted_to,
    )
    return await service.list_entries(
        session, tenant_id=principal.tenant_id, filters=filters, page=page
    )


@router.post(
    "/entries",
    status_code=201,
    response_model=EntryOut,
    responses=problems(400, 401, 403, 413, 422, 429),
)
async def post_manual_entry(
    body: ManualEntryIn, request: Request, principal: LedgerWrite, session: TenantSession
) -> JSONResponse:
    """Post an entry by hand (adjustments, opening balances). Lines name an account by
    `account_id` or `account_code`; each is a positive `debit_minor` or `credit_minor`; debits
    must equal credits (422 `ledger-entry-unbalanced` otherwise). Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    entry = await service.post_manual_entry(
        session, tenant_id=principal.tenant_id, body=body, posted_by=_caller(principal)
    )
    return await idem.save(
        201, entry.model_dump(mode="json"), location=f"/v1/ledger/entries/{entry.id}"
    )


@router.get("/entries/{entry_id}", response_model=EntryOut, responses=problems(401, 403, 404, 429))
async def get_entry(entry_id: EntryId, principal: LedgerRead, session: TenantSession) -> EntryOut:
    """One journal entry with its lines."""
    return await service.get_entry(session, tenant_id=principal.tenant_id, entry_id=entry_id)


@router.post(
    "/entries/{entry_id}/reverse",
    status_code=201,
    response_model=EntryOut,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 429),
)
async def reverse_entry(
    entry_id: EntryId,
    request: Request,
    principal: LedgerWrite,
    session: TenantSession,
    body: Annotated[ReverseIn | None, Body()] = None,
) -> JSONResponse:
    """Post the reversing entry of `entry_id`: the same lines with debits and credits swapped.
    An entry is reversed once (409 names the reversal). Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    reversal = await service.reverse_entry(
        session,
        tenant_id=principal.tenant_id,
        entry_id=entry_id,
        description=body.description if body else None,
        posted_by=_caller(principal),
    )
    return await idem.save(
        201, reversal.model_dump(mode="json"), location=f"/v1/ledger/entries/{reversal.id}"
    )


# -- reports -------------------------------------------------------------------------------------


@router.get("/trial-balance", response_model=TrialBalance, responses=problems(401, 403, 422, 429))
async def trial_balance(
    principal: LedgerRead,
    session: TenantSession,
    as_of: AsOf = None,
    currency: CurrencyQuery = None,
) -> TrialBalance:
    """Total debits and credits per account and currency, and per currency totals that
    balance (`balanced` is true when they do in every currency)."""
    return await service.trial_balance(
        session, tenant_id=principal.tenant_id, as_of=as_of, currency=currency
    )


@router.get(
    "/customers/{customer_id}/balance",
    response_model=CustomerBalance,
    responses=problems(401, 403, 404, 422, 429),
)
async def customer_balance(
    customer_id: CustomerId, principal: LedgerRead, session: TenantSession, as_of: AsOf = None
) -> CustomerBalance:
    """What the customer owes per currency: its receivables lines (invoices less payments).
    404 when the tenant has no such customer."""
    await customers_service.get_customer(session, customer_id)
    return await service.customer_balance(
        session, tenant_id=principal.tenant_id, customer_id=customer_id, as_of=as_of
    )
