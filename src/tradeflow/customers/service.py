"""Customers use cases, and the contract other contexts rely on.

Other contexts call only the functions at the top — `get_customer`,
`get_buyer`, `list_approvers`, and for a connector's pulled changes
`apply_external_changes` / `create_from_external` — and get plain frozen views
back, never rows.
They take the request's (or handler's) tenant session and read the tenant
from it. The use cases below them serve this context's endpoints. Nothing
here commits: the request's unit of work does, with the outbox rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.customers import events
from tradeflow.customers.models import BuyerProfile, Customer, CustomerGroup
from tradeflow.customers.repository import CustomersRepository
from tradeflow.customers.schemas import (
    BuyerIn,
    BuyerPatch,
    CustomerGroupIn,
    CustomerGroupPatch,
    CustomerIn,
    CustomerPatch,
)
from tradeflow.errors import Conflict, NotFound, UnprocessableEntity
from tradeflow.events import publish
from tradeflow.identity import service as identity
from tradeflow.identity.principal import BuyerRole, Principal
from tradeflow.kit.etag import check_if_match
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow

# Who may approve a buyer's order that is over their spending limit.
APPROVER_ROLES = (BuyerRole.APPROVER.value, BuyerRole.BUYER_ADMIN.value)


class CustomerNotFound(NotFound):
    slug, title = "customer-not-found", "Customer not found"


class CustomerGroupNotFound(NotFound):
    slug, title = "customer-group-not-found", "Customer group not found"


class BuyerNotFound(NotFound):
    slug, title = "buyer-not-found", "Buyer not found"


class UnknownCustomerGroup(UnprocessableEntity):
    slug, title = "unknown-customer-group", "No such customer group"


class CustomerGroupNameTaken(Conflict):
    slug, title = "customer-group-name-taken", "Customer group name taken"


class CustomerGroupInUse(Conflict):
    slug, title = "customer-group-in-use", "Customer group still in use"


class CustomerInactive(Conflict):
    slug, title = "customer-inactive", "Customer is inactive"


# -- the contract ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CustomerView:
    id: uuid.UUID
    name: str
    currency: str
    payment_terms_days: int
    credit_limit_minor: int | None  # None: no credit limit
    group_id: uuid.UUID | None
    active: bool
    tax_id: str | None = None
    billing_address: dict[str, Any] | None = None
    group_name: str | None = None
    discount_percent: Decimal = Decimal(0)  # the group's discount on base prices


@dataclass(frozen=True, slots=True)
class BuyerView:
    user_id: uuid.UUID
    customer_id: uuid.UUID
    role: str
    spending_limit_minor: int | None  # None: no limit


class NoTenant(RuntimeError):
    """A contract function was called on a session that is not confined to a tenant."""


async def tenant_of(session: AsyncSession) -> uuid.UUID:
    """The tenant a tenant session (request or handler) is confined to."""
    cached = session.info.get("tenant_id")
    value = (
        cached
        or (await session.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar()
    )
    if not value:
        raise NoTenant("this needs a tenant session (Database.tenant_session)")
    tenant_id = uuid.UUID(str(value))
    # A tenant session never changes tenant, so later calls on it skip the round trip.
    session.info["tenant_id"] = tenant_id
    return tenant_id


def _view(customer: Customer, group: CustomerGroup | None) -> CustomerView:
    return CustomerView(
        id=customer.id,
        name=customer.name,
        currency=customer.currency,
        payment_terms_days=customer.payment_terms_days,
        credit_limit_minor=customer.credit_limit_minor,
        group_id=customer.group_id,
        active=customer.active,
        tax_id=customer.tax_id,
        billing_address=customer.billing_address,
        group_name=group.name if group else None,
        discount_percent=group.discount_percent if group else Decimal(0),
    )


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> CustomerView:
    """The customer with its group's name and discount; `CustomerNotFound` (404) if none."""
    repo = CustomersRepository(session, await tenant_of(session))
    found = await repo.customer_with_group(customer_id)
    if found is None:
        raise CustomerNotFound(f"No customer {customer_id}.", field="customer_id")
    return _view(*found)


async def get_buyer(session: AsyncSession, user_id: uuid.UUID) -> BuyerView | None:
    """The buyer profile of a user (None for staff and unknown users)."""
    repo = CustomersRepository(session, await tenant_of(session))
    profile = await repo.buyer(user_id)
    if profile is None:
        return None
    return BuyerView(
        user_id=profile.user_id,
        customer_id=profile.customer_id,
        role=profile.role,
        spending_limit_minor=profile.spending_limit_minor,
    )


async def list_approvers(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """User ids of the customer's buyers who may approve orders (approvers and buyer-admins)."""
    repo = CustomersRepository(session, await tenant_of(session))
    return await repo.approvers(customer_id, APPROVER_ROLES)


class InvalidCustomerFields(UnprocessableEntity):
    slug, title = "invalid-customer-fields", "Invalid customer fields"


def _validated(model: type[CustomerPatch] | type[CustomerIn], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidCustomerFields(summary) from exc


async def apply_external_changes(
    session: AsyncSession, customer_id: uuid.UUID, fields: dict[str, Any]
) -> None:
    """Take over field values a connected system holds (the integrations pull side): the same
    validation, version bump and `customer.updated` event as an edit through the API.
    `InvalidCustomerFields` (422) when a value is not acceptable."""
    tenant_id = await tenant_of(session)
    await update_customer(session, tenant_id, customer_id, _validated(CustomerPatch, fields))


async def create_from_external(session: AsyncSession, fields: dict[str, Any]) -> CustomerView:
    """Create a customer from a connected system's record (when its connector is allowed to)."""
    tenant_id = await tenant_of(session)
    customer = await create_customer(session, tenant_id, _validated(CustomerIn, fields))
    return await get_customer(session, customer.id)


# -- customer groups ---------------------------------------------------------------------------
async def _group_or_404(repo: CustomersRepository, group_id: uuid.UUID) -> CustomerGroup:
    group = await repo.group(group_id)
    if group is None:
        raise CustomerGroupNotFound(f"No customer group {group_id}.")
    return group


async def _unique_group_name(
    repo: CustomersRepository, name: str, *, except_id: uuid.UUID | None = None
) -> None:
    existing = await repo.group_by_name(name)
    if existing is not None and existing.id != except_id:
        raise CustomerGroupNameTaken(f"A customer group named {name!r} exists.", field="name")


async def _flush_group(repo: CustomersRepository, group: CustomerGroup, *, new: bool) -> None:
    try:
        async with repo.session.begin_nested():
            if new:
                await repo.add(group)
            else:
                await repo.session.flush()
    except IntegrityError as exc:  # two creates with one name at once
        raise CustomerGroupNameTaken(
            f"A customer group named {group.name!r} exists.", field="name"
        ) from exc


async def create_group(
    session: AsyncSession, tenant_id: uuid.UUID, body: CustomerGroupIn
) -> CustomerGroup:
    repo = CustomersRepository(session, tenant_id)
    await _unique_group_name(repo, body.name)
    group = CustomerGroup(
        name=body.name, description=body.description, discount_percent=body.discount_percent
    )
    await _flush_group(repo, group, new=True)
    await publish(
        session,
        events.CustomerGroupCreated(
            customer_group_id=group.id, name=group.name, discount_percent=group.discount_percent
        ),
        tenant_id=tenant_id,
        aggregate_id=group.id,
    )
    return group


async def get_group(
    session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID
) -> CustomerGroup:
    return await _group_or_404(CustomersRepository(session, tenant_id), group_id)


async def update_group(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    group_id: uuid.UUID,
    patch: CustomerGroupPatch,
    *,
    if_match: str | None = None,
) -> CustomerGroup:
    repo = CustomersRepository(session, tenant_id)
    group = await _group_or_404(repo, group_id)
    check_if_match(if_match, group.version)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("name", "description", "discount_percent"):
        if changes.get(name) is None:
            changes.pop(name, None)
    if "name" in changes:
        await _unique_group_name(repo, changes["name"], except_id=group.id)
    for name, value in changes.items():
        setattr(group, name, value)
    if changes:
        group.version += 1
        group.updated_at = utcnow()
        await _flush_group(repo, group, new=False)
        await publish(
            session,
            events.CustomerGroupUpdated(
                customer_group_id=group.id,
                changed=sorted(changes),
                name=group.name,
                discount_percent=group.discount_percent,
            ),
            tenant_id=tenant_id,
            aggregate_id=group.id,
        )
    return group


async def delete_group(session: AsyncSession, tenant_id: uuid.UUID, group_id: uuid.UUID) -> None:
    repo = CustomersRepository(session, tenant_id)
    group = await _group_or_404(repo, group_id)
    if await repo.group_in_use(group.id):
        raise CustomerGroupInUse("Customers still belong to this group; move them first.")
    try:
        async with session.begin_nested():
            await repo.delete_group(group)
    except IntegrityError as exc:  # a price list still points at it
        raise CustomerGroupInUse(
            "Price lists still belong to this group; delete or move them first."
        ) from exc
    await publish(
        session,
        events.CustomerGroupDeleted(customer_group_id=group_id),
        tenant_id=tenant_id,
        aggregate_id=group_id,
    )


async def list_groups(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest, *, name: str | None = None
) -> tuple[list[CustomerGroup], str | None]:
    return await CustomersRepository(session, tenant_id).list_groups(page, name=name)


# -- customers ---------------------------------------------------------------------------------
async def _check_group(repo: CustomersRepository, group_id: uuid.UUID | None) -> None:
    if group_id is not None and await repo.group(group_id) is None:
        raise UnknownCustomerGroup(f"No customer group {group_id}.", field="group_id")


async def create_customer(
    session: AsyncSession, tenant_id: uuid.UUID, body: CustomerIn
) -> Customer:
    repo = CustomersRepository(session, tenant_id)
    await _check_group(repo, body.group_id)
    customer = Customer(
        name=body.name,
        tax_id=body.tax_id or None,
        billing_address=body.billing_address.model_dump() if body.billing_address else None,
        currency=body.currency,
        payment_terms_days=body.payment_terms_days,
        credit_limit_minor=body.credit_limit_minor,
        group_id=body.group_id,
        active=body.active,
    )
    await repo.add(customer)
    await publish(
        session,
        events.CustomerCreated(
            customer_id=customer.id,
            name=customer.name,
            currency=customer.currency,
            group_id=customer.group_id,
            payment_terms_days=customer.payment_terms_days,
            credit_limit_minor=customer.credit_limit_minor,
        ),
        tenant_id=tenant_id,
        aggregate_id=customer.id,
    )
    return customer


async def get_customer_row(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> Customer:
    customer = await CustomersRepository(session, tenant_id).customer(customer_id)
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    return customer


_NOT_NULL = ("name", "currency", "payment_terms_days", "active")


async def update_customer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    patch: CustomerPatch,
    *,
    if_match: str | None = None,
) -> Customer:
    repo = CustomersRepository(session, tenant_id)
    customer = await repo.customer(customer_id, for_update=True)
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    check_if_match(if_match, customer.version)
    changes = patch.model_dump(exclude_unset=True)
    for name in _NOT_NULL:
        if name in changes and changes[name] is None:
            raise UnprocessableEntity(f"{name} cannot be null.", field=name)
    if "group_id" in changes:
        await _check_group(repo, changes["group_id"])
    if "tax_id" in changes and not changes["tax_id"]:
        changes["tax_id"] = None
    changed = sorted(k for k, v in changes.items() if getattr(customer, k) != v)
    for name in changed:
        setattr(customer, name, changes[name])
    if changed:
        customer.version += 1
        customer.updated_at = utcnow()
        await session.flush()
        await publish(
            session,
            events.CustomerUpdated(
                customer_id=customer.id,
                changed=changed,
                currency=customer.currency,
                group_id=customer.group_id,
                active=customer.active,
                credit_limit_minor=customer.credit_limit_minor,
            ),
            tenant_id=tenant_id,
            aggregate_id=customer.id,
        )
    return customer


async def list_customers(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest, **filters: Any
) -> tuple[list[Customer], str | None]:
    return await CustomersRepository(session, tenant_id).list_customers(page, **filters)


# -- buyers ------------------------------------------------------------------------------------
async def create_buyer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    body: BuyerIn,
    *,
    actor: Principal | None,
    ip: str | None = None,
) -> BuyerProfile:
    """A buyer user of the customer: an identity user (`kind='buyer'`) plus their profile."""
    repo = CustomersRepository(session, tenant_id)
    customer = await repo.customer(customer_id)
    if customer is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    if not customer.active:
        raise CustomerInactive("Reactivate the customer before adding buyers.")
    user = await identity.create_user(
        session,
        tenant_id,
        email=str(body.email),
        password=body.password,
        role=body.role.value,
        kind="buyer",
        customer_id=customer.id,
        display_name=body.display_name,
        actor=actor,
        ip=ip,
    )
    profile = BuyerProfile(
        user_id=user.id,
        customer_id=customer.id,
        email=user.email,
        role=body.role.value,
        spending_limit_minor=body.spending_limit_minor,
    )
    await repo.add(profile)
    await publish(
        session,
        events.UserCreated(
            user_id=user.id,
            kind="buyer",
            email=user.email,
            display_name=user.display_name,
            role=body.role.value,
            customer_id=customer.id,
        ),
        tenant_id=tenant_id,
        aggregate_id=user.id,
    )
    return profile


async def _buyer_of(
    repo: CustomersRepository, customer_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool
) -> BuyerProfile:
    profile = await repo.buyer(user_id, for_update=for_update)
    if profile is None or profile.customer_id != customer_id:
        raise BuyerNotFound(f"No buyer {user_id} of customer {customer_id}.")
    return profile


async def get_buyer_row(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, user_id: uuid.UUID
) -> BuyerProfile:
    return await _buyer_of(
        CustomersRepository(session, tenant_id), customer_id, user_id, for_update=False
    )


async def update_buyer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    user_id: uuid.UUID,
    patch: BuyerPatch,
) -> BuyerProfile:
    repo = CustomersRepository(session, tenant_id)
    profile = await _buyer_of(repo, customer_id, user_id, for_update=True)
    changes = patch.model_dump(exclude_unset=True)
    if "spending_limit_minor" in changes and (
        changes["spending_limit_minor"] != profile.spending_limit_minor
    ):
        profile.spending_limit_minor = changes["spending_limit_minor"]
        profile.updated_at = utcnow()
        await session.flush()
        await publish(
            session,
            events.BuyerUpdated(
                user_id=profile.user_id,
                customer_id=profile.customer_id,
                role=profile.role,
                spending_limit_minor=profile.spending_limit_minor,
            ),
            tenant_id=tenant_id,
            aggregate_id=profile.user_id,
        )
    return profile


async def list_buyers(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    page: PageRequest,
    *,
    role: str | None = None,
) -> tuple[list[BuyerProfile], str | None]:
    repo = CustomersRepository(session, tenant_id)
    if await repo.customer(customer_id) is None:
        raise CustomerNotFound(f"No customer {customer_id}.")
    return await repo.list_buyers(customer_id, page, role=role)
