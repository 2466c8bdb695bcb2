"""`/v1/price-lists` (+ entries) and `/v1/contract-prices`.

Staff read with `prices:read` and change with `prices:write`. Buyers hold
`prices:read` but see only what prices them: the base lists, their group's
lists, their own company's contract prices, and quotes for their own company.
Anything else is 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from tradeflow.catalog import prices
from tradeflow.catalog.models import ContractPrice, PriceList, PriceListEntry
from tradeflow.catalog.schemas import (
    ContractPriceIn,
    ContractPriceOut,
    ContractPricePatch,
    EntryIn,
    EntryOut,
    EntryPatch,
    PriceListIn,
    PriceListOut,
    PriceListPatch,
    SkuCode,
)
from tradeflow.customers import service as customers
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.currency import CurrencyCode
from tradeflow.kit.etag import IfMatch, etag
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams

router = APIRouter()

Read = Annotated[Principal, require_scopes("prices:read")]
Write = Annotated[Principal, require_scopes("prices:write")]
ValidOn = Annotated[
    AwareDatetime | None, Query(description="Only those valid at this instant (ISO 8601).")
]


def _caller(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def _list_out(price_list: PriceList) -> PriceListOut:
    return PriceListOut.model_validate(price_list)


def _entry_out(entry: PriceListEntry, code: str) -> EntryOut:
    return EntryOut(
        id=entry.id,
        price_list_id=entry.price_list_id,
        sku_id=entry.sku_id,
        sku=code,
        min_quantity=entry.min_quantity,
        unit_price_minor=entry.unit_price_minor,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


def _contract_out(contract: ContractPrice, code: str) -> ContractPriceOut:
    return ContractPriceOut(
        id=contract.id,
        customer_id=contract.customer_id,
        sku_id=contract.sku_id,
        sku=code,
        currency=contract.currency,
        min_quantity=contract.min_quantity,
        unit_price_minor=contract.unit_price_minor,
        valid_from=contract.valid_from,
        valid_to=contract.valid_to,
        note=contract.note,
        created_at=contract.created_at,
        updated_at=contract.updated_at,
    )


async def _buyer_groups(session: TenantSession, principal: Principal) -> list[uuid.UUID | None]:
    """The price-list groups a buyer may see: the base lists (None) and their own group."""
    assert principal.customer_id is not None
    customer = await customers.get_customer(session, principal.customer_id)
    return [None, customer.group_id]


async def _visible_list(
    session: TenantSession, principal: Principal, price_list: PriceList
) -> None:
    if principal.is_buyer and (
        not price_list.active
        or price_list.customer_group_id not in await _buyer_groups(session, principal)
    ):
        raise prices.PriceListNotFound(f"No price list {price_list.id}.")


# -- price lists -------------------------------------------------------------------------------
@router.get(
    "/price-lists",
    response_model=Page[PriceListOut],
    tags=["prices"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_price_lists(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    currency: Annotated[CurrencyCode | None, Query()] = None,
    customer_group_id: uuid.UUID | None = None,
    base: Annotated[
        bool | None, Query(description="true: base lists only; false: group lists.")
    ] = None,
    active: bool | None = None,
    valid_on: ValidOn = None,
) -> Page[PriceListOut]:
    """Price lists, newest first, filtered by currency, group, base, active flag or validity."""
    visible = None
    if principal.is_buyer:
        visible, active = await _buyer_groups(session, principal), True
    rows, cursor = await prices.list_price_lists(
        session,
        principal.tenant_id,
        page,
        currency=currency,
        customer_group_id=customer_group_id,
        base=base,
        active=active,
        valid_on=valid_on,
        visible_groups=visible,
    )
    return Page(items=[_list_out(p) for p in rows], next_cursor=cursor)


@router.post(
    "/price-lists",
    status_code=201,
    response_model=PriceListOut,
    tags=["prices"],
    responses=problems(400, 401, 403, 422, 429),
)
async def create_price_list(
    body: PriceListIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Create a price list for a customer group (or, without one, a base list), with tiers.

    Valid from `valid_from` (inclusive) to `valid_to` (exclusive); each entry is
    a tier: from `min_quantity` units of `sku`, `unit_price_minor`. Emits
    `price_list.changed`; quotes see it from the commit on. Accepts `Idempotency-Key`.
    """
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    price_list = await prices.create_price_list(session, principal.tenant_id, body)
    return await idem.save(
        201,
        _list_out(price_list).model_dump(mode="json"),
        location=f"/v1/price-lists/{price_list.id}",
    )


@router.get(
    "/price-lists/{price_list_id}",
    response_model=PriceListOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def get_price_list(
    price_list_id: uuid.UUID, principal: Read, session: TenantSession, response: Response
) -> PriceListOut:
    """One price list, with its `ETag`."""
    price_list = await prices.get_price_list(session, principal.tenant_id, price_list_id)
    await _visible_list(session, principal, price_list)
    response.headers["ETag"] = etag(price_list.version)
    return _list_out(price_list)


@router.patch(
    "/price-lists/{price_list_id}",
    response_model=PriceListOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 412, 422, 429),
)
async def update_price_list(
    price_list_id: uuid.UUID,
    body: PriceListPatch,
    principal: Write,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> PriceListOut:
    """Rename a list, move its validity window, or (de)activate it. Emits `price_list.changed`."""
    price_list = await prices.update_price_list(
        session, principal.tenant_id, price_list_id, body, if_match=if_match
    )
    response.headers["ETag"] = etag(price_list.version)
    return _list_out(price_list)


@router.delete(
    "/price-lists/{price_list_id}",
    status_code=204,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def delete_price_list(
    price_list_id: uuid.UUID, principal: Write, session: TenantSession
) -> Response:
    """Delete a price list and its entries. Emits `price_list.changed`."""
    await prices.delete_price_list(session, principal.tenant_id, price_list_id)
    return Response(status_code=204)


@router.get(
    "/price-lists/{price_list_id}/entries",
    response_model=Page[EntryOut],
    tags=["prices"],
    responses=problems(400, 401, 403, 404, 422, 429),
)
async def list_entries(
    price_list_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    sku: Annotated[SkuCode | None, Query()] = None,
) -> Page[EntryOut]:
    """A price list's entries (tiers), oldest first; `sku` filters to one SKU's tiers."""
    price_list = await prices.get_price_list(session, principal.tenant_id, price_list_id)
    await _visible_list(session, principal, price_list)
    rows, cursor = await prices.list_entries(
        session, principal.tenant_id, price_list_id, page, sku=sku
    )
    return Page(items=[_entry_out(e, c) for e, c in rows], next_cursor=cursor)


@router.post(
    "/price-lists/{price_list_id}/entries",
    status_code=201,
    response_model=EntryOut,
    tags=["prices"],
    responses=problems(400, 401, 403, 404, 409, 422, 429),
)
async def add_entry(
    price_list_id: uuid.UUID,
    body: EntryIn,
    request: Request,
    principal: Write,
    session: TenantSession,
) -> JSONResponse:
    """Add a tier: from `min_quantity` units of `sku`, `unit_price_minor` (409 if it exists)."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    entry, code = await prices.add_entry(session, principal.tenant_id, price_list_id, body)
    return await idem.save(
        201,
        _entry_out(entry, code).model_dump(mode="json"),
        location=f"/v1/price-lists/{price_list_id}/entries/{entry.id}",
    )


@router.get(
    "/price-lists/{price_list_id}/entries/{entry_id}",
    response_model=EntryOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def get_entry(
    price_list_id: uuid.UUID, entry_id: uuid.UUID, principal: Read, session: TenantSession
) -> EntryOut:
    """One entry (tier) of a price list."""
    price_list = await prices.get_price_list(session, principal.tenant_id, price_list_id)
    await _visible_list(session, principal, price_list)
    entry, code = await prices.get_entry(session, principal.tenant_id, price_list_id, entry_id)
    return _entry_out(entry, code)


@router.patch(
    "/price-lists/{price_list_id}/entries/{entry_id}",
    response_model=EntryOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 422, 429),
)
async def update_entry(
    price_list_id: uuid.UUID,
    entry_id: uuid.UUID,
    body: EntryPatch,
    principal: Write,
    session: TenantSession,
) -> EntryOut:
    """Change a tier's unit price. Emits `price_list.changed`."""
    entry, code = await prices.update_entry(
        session, principal.tenant_id, price_list_id, entry_id, body
    )
    return _entry_out(entry, code)


@router.delete(
    "/price-lists/{price_list_id}/entries/{entry_id}",
    status_code=204,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def delete_entry(
    price_list_id: uuid.UUID, entry_id: uuid.UUID, principal: Write, session: TenantSession
) -> Response:
    """Remove a tier. Emits `price_list.changed`."""
    await prices.delete_entry(session, principal.tenant_id, price_list_id, entry_id)
    return Response(status_code=204)


# -- contract prices ---------------------------------------------------------------------------
@router.get(
    "/contract-prices",
    response_model=Page[ContractPriceOut],
    tags=["prices"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_contract_prices(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    customer_id: uuid.UUID | None = None,
    sku: Annotated[SkuCode | None, Query()] = None,
    currency: Annotated[CurrencyCode | None, Query()] = None,
    valid_on: ValidOn = None,
) -> Page[ContractPriceOut]:
    """Contract prices, newest first, by customer, SKU, currency or validity (buyers: their own)."""
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            return Page(items=[], next_cursor=None)
        customer_id = principal.customer_id
    rows, cursor = await prices.list_contract_prices(
        session,
        principal.tenant_id,
        page,
        sku=sku,
        customer_id=customer_id,
        currency=currency,
        valid_on=valid_on,
    )
    return Page(items=[_contract_out(c, code) for c, code in rows], next_cursor=cursor)


@router.post(
    "/contract-prices",
    status_code=201,
    response_model=ContractPriceOut,
    tags=["prices"],
    responses=problems(400, 401, 403, 422, 429),
)
async def create_contract_price(
    body: ContractPriceIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Agree a price with one customer for one SKU (from `min_quantity`, in a window).

    It beats every price list for that customer. Emits `contract_price.changed`.
    Accepts `Idempotency-Key`.
    """
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    contract, code = await prices.create_contract_price(session, principal.tenant_id, body)
    return await idem.save(
        201,
        _contract_out(contract, code).model_dump(mode="json"),
        location=f"/v1/contract-prices/{contract.id}",
    )


async def _visible_contract(
    session: TenantSession, principal: Principal, contract_price_id: uuid.UUID
) -> tuple[ContractPrice, str]:
    contract, code = await prices.get_contract_price(
        session, principal.tenant_id, contract_price_id
    )
    if principal.is_buyer and contract.customer_id != principal.customer_id:
        raise prices.ContractPriceNotFound(f"No contract price {contract_price_id}.")
    return contract, code


@router.get(
    "/contract-prices/{contract_price_id}",
    response_model=ContractPriceOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def get_contract_price(
    contract_price_id: uuid.UUID, principal: Read, session: TenantSession
) -> ContractPriceOut:
    """One contract price."""
    return _contract_out(*await _visible_contract(session, principal, contract_price_id))


@router.patch(
    "/contract-prices/{contract_price_id}",
    response_model=ContractPriceOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 422, 429),
)
async def update_contract_price(
    contract_price_id: uuid.UUID,
    body: ContractPricePatch,
    principal: Write,
    session: TenantSession,
) -> ContractPriceOut:
    """Change a contract price's unit price, window or note. Emits `contract_price.changed`."""
    contract, code = await prices.update_contract_price(
        session, principal.tenant_id, contract_price_id, body
    )
    return _contract_out(contract, code)


@router.delete(
    "/contract-prices/{contract_price_id}",
    status_code=204,
    tags=["prices"],
    responses=problems(401, 403, 404, 429),
)
async def delete_contract_price(
    contract_price_id: uuid.UUID, principal: Write, session: TenantSession
) -> Response:
    """End a contract price. Emits `contract_price.changed`."""
    await prices.delete_contract_price(session, principal.tenant_id, contract_price_id)
    return Response(status_code=204)
