"""`/v1/customers`, `/v1/customers/{id}/buyers` and `/v1/customer-groups`.

Staff hold `customers:read` / `customers:write` by role. A buyer-admin holds
`customers:read` and sees only their own company (another company is 404,
as for another tenant); customer groups are the seller's business and not
shown to buyers.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from tradeflow.customers import service
from tradeflow.customers.models import BuyerProfile, Customer, CustomerGroup
from tradeflow.customers.schemas import (
    BuyerIn,
    BuyerOut,
    BuyerPatch,
    CustomerGroupIn,
    CustomerGroupOut,
    CustomerGroupPatch,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
)
from tradeflow.errors import Forbidden
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import BuyerRole, Principal
from tradeflow.kit.currency import CurrencyCode
from tradeflow.kit.etag import IfMatch, etag
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.kit.ratelimit import client_ip

router = APIRouter()

Read = Annotated[Principal, require_scopes("customers:read")]
Write = Annotated[Principal, require_scopes("customers:write")]
NameFilter = Annotated[
    str | None, Query(max_length=200, description="Case-insensitive substring of the name.")
]


class StaffOnly(Forbidden):
    slug, title = "staff-only", "Seller staff only"


def _staff(principal: Principal) -> None:
    if principal.is_buyer:
        raise StaffOnly("Buyers cannot see or change this.")


def _caller(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def _own_customer(principal: Principal, customer_id: uuid.UUID) -> None:
    # A buyer asking for another company gets what another tenant would: 404.
    if principal.is_buyer and principal.customer_id != customer_id:
        raise service.CustomerNotFound(f"No customer {customer_id}.")


def _group_out(group: CustomerGroup) -> CustomerGroupOut:
    return CustomerGroupOut.model_validate(group)


def _customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut.model_validate(customer)


def _buyer_out(profile: BuyerProfile) -> BuyerOut:
    return BuyerOut.model_validate(profile)


# -- customer groups ---------------------------------------------------------------------------
@router.get(
    "/customer-groups",
    response_model=Page[CustomerGroupOut],
    tags=["customers"],
    responses=problems(400, 401, 403, 429),
)
async def list_customer_groups(
    principal: Read, session: TenantSession, page: PageParams, name: NameFilter = None
) -> Page[CustomerGroupOut]:
    """Customer groups, newest first; `name` filters by substring."""
    _staff(principal)
    rows, cursor = await service.list_groups(session, principal.tenant_id, page, name=name)
    return Page(items=[_group_out(g) for g in rows], next_cursor=cursor)


@router.post(
    "/customer-groups",
    status_code=201,
    response_model=CustomerGroupOut,
    tags=["customers"],
    responses=problems(400, 401, 403, 409, 422, 429),
)
async def create_customer_group(
    body: CustomerGroupIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Create a customer group (names are unique, case-insensitively). Accepts `Idempotency-Key`."""
    _staff(principal)
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    group = await service.create_group(session, principal.tenant_id, body)
    return await idem.save(
        201,
        _group_out(group).model_dump(mode="json"),
        location=f"/v1/customer-groups/{group.id}",
    )


@router.get(
    "/customer-groups/{group_id}",
    response_model=CustomerGroupOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 429),
)
async def get_customer_group(
    group_id: uuid.UUID, principal: Read, session: TenantSession, response: Response
) -> CustomerGroupOut:
    """One customer group; its `ETag` can be sent back as `If-Match` when updating."""
    _staff(principal)
    group = await service.get_group(session, principal.tenant_id, group_id)
    response.headers["ETag"] = etag(group.version)
    return _group_out(group)


@router.patch(
    "/customer-groups/{group_id}",
    response_model=CustomerGroupOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 409, 412, 422, 429),
)
async def update_customer_group(
    group_id: uuid.UUID,
    body: CustomerGroupPatch,
    principal: Write,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerGroupOut:
    """Rename a group, or change its description or discount (prices follow at once)."""
    _staff(principal)
    group = await service.update_group(
        session, principal.tenant_id, group_id, body, if_match=if_match
    )
    response.headers["ETag"] = etag(group.version)
    return _group_out(group)


@router.delete(
    "/customer-groups/{group_id}",
    status_code=204,
    tags=["customers"],
    responses=problems(401, 403, 404, 409, 429),
)
async def delete_customer_group(
    group_id: uuid.UUID, principal: Write, session: TenantSession
) -> Response:
    """Delete a group no customer and no price list belongs to (else 409)."""
    _staff(principal)
    await service.delete_group(session, principal.tenant_id, group_id)
    return Response(status_code=204)


# -- customers ---------------------------------------------------------------------------------
@router.get(
    "/customers",
    response_model=Page[CustomerOut],
    tags=["customers"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_customers(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    group_id: uuid.UUID | None = None,
    currency: Annotated[CurrencyCode | None, Query()] = None,
    active: bool | None = None,
    name: NameFilter = None,
) -> Page[CustomerOut]:
    """Customer companies, newest first, filtered by group, currency, active flag or name.

    A buyer-admin sees their own company only.
    """
    ids = [principal.customer_id] if principal.customer_id is not None else None
    rows, cursor = await service.list_customers(
        session,
        principal.tenant_id,
        page,
        ids=ids,
        group_id=group_id,
        currency=currency,
        active=active,
        name=name,
    )
    return Page(items=[_customer_out(c) for c in rows], next_cursor=cursor)


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerOut,
    tags=["customers"],
    responses=problems(400, 401, 403, 422, 429),
)
async def create_customer(
    body: CustomerIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Create a customer company. Emits `customer.created`. Accepts `Idempotency-Key`."""
    _staff(principal)
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    customer = await service.create_customer(session, principal.tenant_id, body)
    return await idem.save(
        201,
        _customer_out(customer).model_dump(mode="json"),
        location=f"/v1/customers/{customer.id}",
    )


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 429),
)
async def get_customer(
    customer_id: uuid.UUID, principal: Read, session: TenantSession, response: Response
) -> CustomerOut:
    """One customer company, with its `ETag`."""
    _own_customer(principal, customer_id)
    customer = await service.get_customer_row(session, principal.tenant_id, customer_id)
    response.headers["ETag"] = etag(customer.version)
    return _customer_out(customer)


@router.patch(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 412, 422, 429),
)
async def update_customer(
    customer_id: uuid.UUID,
    body: CustomerPatch,
    principal: Write,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerOut:
    """Change a customer: only the fields sent change; `null` clears an optional one.

    A changed currency or group changes the customer's prices from the next quote.
    """
    _staff(principal)
    customer = await service.update_customer(
        session, principal.tenant_id, customer_id, body, if_match=if_match
    )
    response.headers["ETag"] = etag(customer.version)
    return _customer_out(customer)


# -- buyers ------------------------------------------------------------------------------------
@router.get(
    "/customers/{customer_id}/buyers",
    response_model=Page[BuyerOut],
    tags=["customers"],
    responses=problems(400, 401, 403, 404, 429),
)
async def list_buyers(
    customer_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    role: BuyerRole | None = None,
) -> Page[BuyerOut]:
    """The customer's buyer users, optionally of one role."""
    _own_customer(principal, customer_id)
    rows, cursor = await service.list_buyers(
        session, principal.tenant_id, customer_id, page, role=role.value if role else None
    )
    return Page(items=[_buyer_out(b) for b in rows], next_cursor=cursor)


@router.post(
    "/customers/{customer_id}/buyers",
    status_code=201,
    response_model=BuyerOut,
    tags=["customers"],
    responses=problems(400, 401, 403, 404, 409, 422, 429),
)
async def create_buyer(
    customer_id: uuid.UUID,
    body: BuyerIn,
    request: Request,
    principal: Write,
    session: TenantSession,
) -> JSONResponse:
    """Create a buyer user of the customer, who then signs in at `/v1/auth/login`.

    Roles: `buyer` places orders, `approver` also approves orders over a
    buyer's spending limit, `buyer-admin` also reads the company's data.
    Emits `user.created`. Accepts `Idempotency-Key`.
    """
    _staff(principal)
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    profile = await service.create_buyer(
        session, principal.tenant_id, customer_id, body, actor=principal, ip=client_ip(request)
    )
    return await idem.save(
        201,
        _buyer_out(profile).model_dump(mode="json"),
        location=f"/v1/customers/{customer_id}/buyers/{profile.user_id}",
    )


@router.get(
    "/customers/{customer_id}/buyers/{user_id}",
    response_model=BuyerOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 429),
)
async def get_buyer(
    customer_id: uuid.UUID, user_id: uuid.UUID, principal: Read, session: TenantSession
) -> BuyerOut:
    """One buyer of the customer."""
    _own_customer(principal, customer_id)
    return _buyer_out(
        await service.get_buyer_row(session, principal.tenant_id, customer_id, user_id)
    )


@router.patch(
    "/customers/{customer_id}/buyers/{user_id}",
    response_model=BuyerOut,
    tags=["customers"],
    responses=problems(401, 403, 404, 422, 429),
)
async def update_buyer(
    customer_id: uuid.UUID,
    user_id: uuid.UUID,
    body: BuyerPatch,
    principal: Write,
    session: TenantSession,
) -> BuyerOut:
    """Change a buyer's spending limit (`null`: no limit)."""
    _staff(principal)
    return _buyer_out(
        await service.update_buyer(session, principal.tenant_id, customer_id, user_id, body)
    )
