"""Use cases behind `/v1/price-lists` (and their entries) and `/v1/contract-prices`.

Every change bumps the tenant's pricing version and publishes
`price_list.changed` / `contract_price.changed` in the same transaction, so
the next quote anywhere sees it (see `cache`). Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog import events
from tradeflow.catalog.models import ContractPrice, PriceList, PriceListEntry, Sku
from tradeflow.catalog.repository import CatalogRepository
from tradeflow.catalog.schemas import (
    ContractPriceIn,
    ContractPricePatch,
    EntryIn,
    EntryPatch,
    PriceListIn,
    PriceListPatch,
)
from tradeflow.customers import service as customers
from tradeflow.errors import Conflict, NotFound, UnprocessableEntity
from tradeflow.events import publish
from tradeflow.kit.etag import check_if_match
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow


class PriceListNotFound(NotFound):
    slug, title = "price-list-not-found", "Price list not found"


class EntryNotFound(NotFound):
    slug, title = "price-list-entry-not-found", "Price list entry not found"


class ContractPriceNotFound(NotFound):
    slug, title = "contract-price-not-found", "Contract price not found"


class EntryExists(Conflict):
    slug, title = "price-list-entry-exists", "Tier already exists"


class UnknownSku(UnprocessableEntity):
    slug, title = "unknown-sku", "No such SKU"


class UnknownReference(UnprocessableEntity):
    slug, title = "unknown-reference", "Referenced object does not exist"


class CurrencyMismatch(UnprocessableEntity):
    slug, title = "currency-mismatch", "Currency does not match"


class InvalidWindow(UnprocessableEntity):
    slug, title = "invalid-validity-window", "Invalid validity window"


def _check_window(valid_from: datetime | None, valid_to: datetime | None) -> None:
    if valid_from is not None and valid_to is not None and valid_from >= valid_to:
        raise InvalidWindow("valid_to must be after valid_from.", field="valid_to")


async def _skus_by_code(
    repo: CatalogRepository, codes: Sequence[str], *, field: str
) -> dict[str, Sku]:
    found = {s.code: s for s, _ in await repo.skus_with_products(list(codes))}
    for index, code in enumerate(codes):
        if code not in found:
            raise UnknownSku(f"No SKU with code {code!r}.", field=field.format(index=index))
    return found


async def _price_list(
    repo: CatalogRepository, price_list_id: uuid.UUID, *, lock: bool = False
) -> PriceList:
    price_list = await repo.price_list(price_list_id, for_update=lock)
    if price_list is None:
        raise PriceListNotFound(f"No price list {price_list_id}.")
    return price_list


async def _announce_list(
    repo: CatalogRepository,
    price_list: PriceList,
    change: Literal["created", "updated", "deleted", "entries_changed"],
    *,
    sku_ids: Sequence[uuid.UUID] = (),
) -> None:
    version = await repo.bump_pricing_version()
    await publish(
        repo.session,
        events.PriceListChanged(
            price_list_id=price_list.id,
            change=change,
            name=price_list.name,
            currency=price_list.currency,
            customer_group_id=price_list.customer_group_id,
            valid_from=price_list.valid_from,
            valid_to=price_list.valid_to,
            active=price_list.active,
            sku_ids=sorted(set(sku_ids)),
            pricing_version=version,
        ),
        tenant_id=repo.tenant_id,
        aggregate_id=price_list.id,
    )


# -- price lists -------------------------------------------------------------------------------
async def create_price_list(
    session: AsyncSession, tenant_id: uuid.UUID, body: PriceListIn
) -> PriceList:
    repo = CatalogRepository(session, tenant_id)
    if body.customer_group_id is not None:
        try:
            await customers.get_group(session, tenant_id, body.customer_group_id)
        except customers.CustomerGroupNotFound as exc:
            raise UnknownReference(
                f"No customer group {body.customer_group_id}.", field="customer_group_id"
            ) from exc
    skus = await _skus_by_code(repo, [e.sku for e in body.entries], field="entries.{index}.sku")
    price_list = PriceList(
        name=body.name,
        currency=body.currency,
        customer_group_id=body.customer_group_id,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        active=body.active,
    )
    await repo.add(price_list)
    entries = [
        PriceListEntry(
            price_list_id=price_list.id,
            sku_id=skus[e.sku].id,
            min_quantity=e.min_quantity,
            unit_price_minor=e.unit_price_minor,
        )
        for e in body.entries
    ]
    if entries:
        await repo.add(*entries)
    await _announce_list(repo, price_list, "created", sku_ids=[e.sku_id for e in entries])
    return price_list


async def get_price_list(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID
) -> PriceList:
    return await _price_list(CatalogRepository(session, tenant_id), price_list_id)


async def list_price_lists(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest, **filters: Any
) -> tuple[list[PriceList], str | None]:
    return await CatalogRepository(session, tenant_id).list_price_lists(page, **filters)


async def update_price_list(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    price_list_id: uuid.UUID,
    patch: PriceListPatch,
    *,
    if_match: str | None = None,
) -> PriceList:
    repo = CatalogRepository(session, tenant_id)
    price_list = await _price_list(repo, price_list_id, lock=True)
    check_if_match(if_match, price_list.version)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("name", "active"):
        if changes.get(name, "") is None:
            raise UnprocessableEntity(f"{name} cannot be null.", field=name)
    _check_window(
        changes.get("valid_from", price_list.valid_from),
        changes.get("valid_to", price_list.valid_to),
    )
    changed = sorted(k for k, v in changes.items() if getattr(price_list, k) != v)
    for name in changed:
        setattr(price_list, name, changes[name])
    if changed:
        price_list.version += 1
        price_list.updated_at = utcnow()
        await session.flush()
        await _announce_list(repo, price_list, "updated")
    return price_list


async def delete_price_list(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID
) -> None:
    repo = CatalogRepository(session, tenant_id)
    price_list = await _price_list(repo, price_list_id, lock=True)
    await repo.delete(price_list)
    await _announce_list(repo, price_list, "deleted")


# -- entries (tiers) ---------------------------------------------------------------------------
async def add_entry(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID, body: EntryIn
) -> tuple[PriceListEntry, str]:
    repo = CatalogRepository(session, tenant_id)
    price_list = await _price_list(repo, price_list_id, lock=True)
    sku = (await _skus_by_code(repo, [body.sku], field="sku"))[body.sku]
    if await repo.entry_for(price_list.id, sku.id, body.min_quantity) is not None:
        raise EntryExists(
            f"{body.sku} already has a tier from {body.min_quantity} in this list; change it "
            "with PATCH instead.",
            field="min_quantity",
        )
    entry = PriceListEntry(
        price_list_id=price_list.id,
        sku_id=sku.id,
        min_quantity=body.min_quantity,
        unit_price_minor=body.unit_price_minor,
    )
    try:
        async with session.begin_nested():
            await repo.add(entry)
    except IntegrityError as exc:
        raise EntryExists("This tier was created meanwhile.", field="min_quantity") from exc
    await _announce_list(repo, price_list, "entries_changed", sku_ids=[sku.id])
    return entry, sku.code


async def _entry(
    repo: CatalogRepository, price_list_id: uuid.UUID, entry_id: uuid.UUID
) -> PriceListEntry:
    entry = await repo.entry(price_list_id, entry_id)
    if entry is None:
        raise EntryNotFound(f"No entry {entry_id} in price list {price_list_id}.")
    return entry


async def update_entry(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    price_list_id: uuid.UUID,
    entry_id: uuid.UUID,
    patch: EntryPatch,
) -> tuple[PriceListEntry, str]:
    repo = CatalogRepository(session, tenant_id)
    price_list = await _price_list(repo, price_list_id, lock=True)
    entry = await _entry(repo, price_list_id, entry_id)
    if entry.unit_price_minor != patch.unit_price_minor:
        entry.unit_price_minor = patch.unit_price_minor
        entry.updated_at = utcnow()
        await session.flush()
        await _announce_list(repo, price_list, "entries_changed", sku_ids=[entry.sku_id])
    codes = await repo.sku_codes([entry.sku_id])
    return entry, codes[entry.sku_id]


async def delete_entry(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID, entry_id: uuid.UUID
) -> None:
    repo = CatalogRepository(session, tenant_id)
    price_list = await _price_list(repo, price_list_id, lock=True)
    entry = await _entry(repo, price_list_id, entry_id)
    await repo.delete(entry)
    await _announce_list(repo, price_list, "entries_changed", sku_ids=[entry.sku_id])


async def get_entry(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID, entry_id: uuid.UUID
) -> tuple[PriceListEntry, str]:
    repo = CatalogRepository(session, tenant_id)
    entry = await _entry(repo, price_list_id, entry_id)
    return entry, (await repo.sku_codes([entry.sku_id]))[entry.sku_id]


async def list_entries(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    price_list_id: uuid.UUID,
    page: PageRequest,
    *,
    sku: str | None = None,
) -> tuple[list[tuple[PriceListEntry, str]], str | None]:
    repo = CatalogRepository(session, tenant_id)
    await _price_list(repo, price_list_id)
    sku_id: uuid.UUID | None = None
    if sku is not None:
        found = await repo.sku_by_code(sku)
        if found is None:
            return [], None
        sku_id = found.id
    rows, cursor = await repo.list_entries(price_list_id, page, sku_id=sku_id)
    codes = await repo.sku_codes([e.sku_id for e in rows])
    return [(e, codes[e.sku_id]) for e in rows], cursor


# -- contract prices ---------------------------------------------------------------------------
async def _announce_contract(
    repo: CatalogRepository, contract: ContractPrice, sku_code: str, change: events.Change
) -> None:
    version = await repo.bump_pricing_version()
    await publish(
        repo.session,
        events.ContractPriceChanged(
            contract_price_id=contract.id,
            change=change,
            customer_id=contract.customer_id,
            sku_id=contract.sku_id,
            sku=sku_code,
            currency=contract.currency,
            min_quantity=contract.min_quantity,
            unit_price_minor=contract.unit_price_minor,
            valid_from=contract.valid_from,
            valid_to=contract.valid_to,
            pricing_version=version,
        ),
        tenant_id=repo.tenant_id,
        aggregate_id=contract.id,
    )


async def create_contract_price(
    session: AsyncSession, tenant_id: uuid.UUID, body: ContractPriceIn
) -> tuple[ContractPrice, str]:
    repo = CatalogRepository(session, tenant_id)
    try:
        customer = await customers.get_customer(session, body.customer_id)
    except customers.CustomerNotFound as exc:
        raise UnknownReference(f"No customer {body.customer_id}.", field="customer_id") from exc
    if body.currency is not None and body.currency != customer.currency:
        raise CurrencyMismatch(
            f"The customer buys in {customer.currency}; a contract price in {body.currency} "
            "would never apply.",
            field="currency",
        )
    sku = (await _skus_by_code(repo, [body.sku], field="sku"))[body.sku]
    contract = ContractPrice(
        customer_id=customer.id,
        sku_id=sku.id,
        currency=customer.currency,
        min_quantity=body.min_quantity,
        unit_price_minor=body.unit_price_minor,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        note=body.note,
    )
    await repo.add(contract)
    await _announce_contract(repo, contract, sku.code, "created")
    return contract, sku.code


async def _contract(
    repo: CatalogRepository, contract_price_id: uuid.UUID, *, lock: bool = False
) -> ContractPrice:
    contract = await repo.contract_price(contract_price_id, for_update=lock)
    if contract is None:
        raise ContractPriceNotFound(f"No contract price {contract_price_id}.")
    return contract


async def get_contract_price(
    session: AsyncSession, tenant_id: uuid.UUID, contract_price_id: uuid.UUID
) -> tuple[ContractPrice, str]:
    repo = CatalogRepository(session, tenant_id)
    contract = await _contract(repo, contract_price_id)
    return contract, (await repo.sku_codes([contract.sku_id]))[contract.sku_id]


async def update_contract_price(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    contract_price_id: uuid.UUID,
    patch: ContractPricePatch,
) -> tuple[ContractPrice, str]:
    repo = CatalogRepository(session, tenant_id)
    contract = await _contract(repo, contract_price_id, lock=True)
    changes = patch.model_dump(exclude_unset=True)
    for name in ("unit_price_minor", "note"):
        if changes.get(name, "") is None:
            raise UnprocessableEntity(f"{name} cannot be null.", field=name)
    _check_window(
        changes.get("valid_from", contract.valid_from),
        changes.get("valid_to", contract.valid_to),
    )
    changed = [k for k, v in changes.items() if getattr(contract, k) != v]
    for name in changed:
        setattr(contract, name, changes[name])
    code = (await repo.sku_codes([contract.sku_id]))[contract.sku_id]
    if changed:
        contract.updated_at = utcnow()
        await session.flush()
        await _announce_contract(repo, contract, code, "updated")
    return contract, code


async def delete_contract_price(
    session: AsyncSession, tenant_id: uuid.UUID, contract_price_id: uuid.UUID
) -> None:
    repo = CatalogRepository(session, tenant_id)
    contract = await _contract(repo, contract_price_id, lock=True)
    code = (await repo.sku_codes([contract.sku_id]))[contract.sku_id]
    await repo.delete(contract)
    await _announce_contract(repo, contract, code, "deleted")


async def list_contract_prices(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    sku: str | None = None,
    **filters: Any,
) -> tuple[list[tuple[ContractPrice, str]], str | None]:
    repo = CatalogRepository(session, tenant_id)
    if sku is not None:
        found = await repo.sku_by_code(sku)
        if found is None:
            return [], None
        filters["sku_id"] = found.id
    rows, cursor = await repo.list_contract_prices(page, **filters)
    codes = await repo.sku_codes([c.sku_id for c in rows])
    return [(c, codes[c.sku_id]) for c in rows], cursor
