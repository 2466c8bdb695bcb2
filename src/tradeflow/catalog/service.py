"""The catalog's contract with other contexts: `quote`, `quote_many` and `resolve_skus`.

`quote` is the only way to a price. It reads the customer (customers'
service), the tenant's pricing version, then the candidate prices — from the
cache when the version matches, else from the database — and lets the pure
`pricing.decide` pick. Use cases behind this context's own endpoints live in
`products.py` and `prices.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog import cache
from tradeflow.catalog.cache import Candidates
from tradeflow.catalog.pricing import PricingInputs, RuleKind, decide
from tradeflow.catalog.repository import CatalogRepository, tenant_and_pricing_version
from tradeflow.customers import service as customers
from tradeflow.customers.service import CustomerNotFound, NoTenant, tenant_of
from tradeflow.errors import NotFound, UnprocessableEntity
from tradeflow.kit.time import utcnow

__all__ = [
    "CustomerInactive",
    "CustomerNotFound",
    "InvalidQuantity",
    "NoPrice",
    "PriceQuote",
    "QuoteError",
    "QuoteRule",
    "SkuInactive",
    "SkuNotFound",
    "SkuView",
    "quote",
    "quote_many",
    "resolve_skus",
]


class QuoteError(UnprocessableEntity):
    """Base of the reasons a SKU cannot be priced for a customer (422 unless said otherwise)."""

    slug, title = "quote-error", "Cannot price this"


class SkuNotFound(NotFound):
    slug, title = "sku-not-found", "SKU not found"


class SkuInactive(QuoteError):
    slug, title = "sku-inactive", "SKU not sold"


class NoPrice(QuoteError):
    slug, title = "no-price", "No price for this customer"


class InvalidQuantity(QuoteError):
    slug, title = "invalid-quantity", "Invalid quantity"


class CustomerInactive(QuoteError):
    slug, title = "customer-inactive", "Customer is inactive"


@dataclass(frozen=True, slots=True)
class SkuView:
    id: uuid.UUID
    code: str
    name: str
    unit: str
    active: bool  # false when the SKU or its product is inactive
    product_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class QuoteRule:
    kind: RuleKind
    id: uuid.UUID
    name: str
    detail: str
    min_quantity: int
    considered: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PriceQuote:
    sku: str
    sku_id: uuid.UUID
    product_id: uuid.UUID
    name: str
    unit: str
    unit_price_minor: int
    currency: str
    rule: QuoteRule
    quantity: int
    customer_id: uuid.UUID
    on: datetime

    @property
    def amount_minor(self) -> int:
        return self.unit_price_minor * self.quantity


async def resolve_skus(session: AsyncSession, codes: Sequence[str]) -> dict[str, SkuView]:
    """The SKUs with these codes (unknown codes are simply absent from the result)."""
    repo = CatalogRepository(session, await tenant_of(session))
    return {
        sku.code: SkuView(
            id=sku.id,
            code=sku.code,
            name=sku.name,
            unit=sku.unit,
            active=sku.active and product.active,
            product_id=sku.product_id,
        )
        for sku, product in await repo.skus_with_products(sorted(set(codes)))
    }


async def _candidates(
    repo: CatalogRepository, version: int, customer: customers.CustomerView, sku: str
) -> Candidates:
    key = cache.cache_key(
        repo.tenant_id,
        version,
        sku=sku,
        customer_id=customer.id,
        currency=customer.currency,
        group_id=customer.group_id,
    )
    found = await cache.lookup(key)
    if found is None:
        found = await repo.pricing_candidates(
            sku_code=sku,
            customer_id=customer.id,
            currency=customer.currency,
            group_id=customer.group_id,
        )
        await cache.store(key, found)
    return found


def _decide(
    customer: customers.CustomerView, candidates: Candidates, sku: str, quantity: int, on: datetime
) -> PriceQuote:
    facts = candidates.sku
    if facts is None:
        raise SkuNotFound(f"No SKU with code {sku!r}.", field="sku")
    if not facts.active:
        raise SkuInactive(f"SKU {sku!r} is not sold at the moment.", field="sku")
    inputs = PricingInputs(
        currency=customer.currency,
        customer_group_id=customer.group_id,
        group_name=customer.group_name,
        discount_percent=customer.discount_percent,
        contracts=candidates.contracts,
        lists=candidates.lists,
    )
    decision = decide(inputs, quantity=quantity, on=on)
    if decision is None:
        raise NoPrice(
            f"No contract price, price list or base price prices {sku!r} in "
            f"{customer.currency} for this customer at quantity {quantity} on {on.isoformat()}.",
            field="sku",
        )
    return PriceQuote(
        sku=facts.code,
        sku_id=facts.id,
        product_id=facts.product_id,
        name=facts.name,
        unit=facts.unit,
        unit_price_minor=decision.unit_price_minor,
        currency=decision.currency,
        rule=QuoteRule(
            kind=decision.kind,
            id=decision.rule_id,
            name=decision.rule_name,
            detail=decision.detail,
            min_quantity=decision.min_quantity,
            considered=decision.considered,
        ),
        quantity=quantity,
        customer_id=customer.id,
        on=on,
    )


def _check(quantity: int, on: datetime | None) -> datetime:
    if on is not None and on.tzinfo is None:
        raise UnprocessableEntity("`on` must carry a time zone (UTC).", field="on")
    if not isinstance(quantity, int) or quantity < 1:
        raise InvalidQuantity("Quantity must be a whole number of at least 1.", field="quantity")
    return on or utcnow()


async def _repo_and_version(session: AsyncSession) -> tuple[CatalogRepository, int]:
    """The tenant's repository and pricing version, read in one round trip.

    The version is read before anything it guards: a change committed after
    this read can only make this quote store fresh data under an old key.
    """
    tenant_id, version = await tenant_and_pricing_version(session)
    if tenant_id is None:
        raise NoTenant("pricing needs a tenant session (Database.tenant_session)")
    session.info["tenant_id"] = tenant_id  # spares `customers.tenant_of` its look-up
    return CatalogRepository(session, tenant_id), version


async def _customer(session: AsyncSession, customer_id: uuid.UUID) -> customers.CustomerView:
    customer = await customers.get_customer(session, customer_id)
    if not customer.active:
        raise CustomerInactive(f"Customer {customer_id} is inactive.", field="customer_id")
    return customer


async def quote(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    sku: str,
    quantity: int,
    on: datetime | None = None,
) -> PriceQuote:
    """The unit price of `sku` for the customer at `quantity` on `on` (default: now).

    Raises `CustomerNotFound`/`SkuNotFound` (404), `CustomerInactive`,
    `SkuInactive`, `NoPrice`, `InvalidQuantity` (422, subclasses of
    `QuoteError` except the two not-founds); each names its `field`.
    """
    when = _check(quantity, on)
    repo, version = await _repo_and_version(session)
    customer = await _customer(session, customer_id)
    candidates = await _candidates(repo, version, customer, sku)
    return _decide(customer, candidates, sku, quantity, when)


async def quote_many(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    lines: Sequence[tuple[str, int]],
    on: datetime | None = None,
) -> list[PriceQuote]:
    """`quote` for several (sku, quantity) lines of one customer at one moment.

    Reads the customer and the pricing version once. The first line that
    cannot be priced raises its error with `line` (0-based index) set.
    """
    when = on or utcnow()
    repo, version = await _repo_and_version(session)
    customer = await _customer(session, customer_id)
    out: list[PriceQuote] = []
    for index, (sku, quantity) in enumerate(lines):
        try:
            _check(quantity, when)
            candidates = await _candidates(repo, version, customer, sku)
            out.append(_decide(customer, candidates, sku, quantity, when))
        except (QuoteError, SkuNotFound) as exc:
            exc.extra["line"] = index
            raise
    return out


# -- catalog upserts for importers (connectors that receive a seller's catalog) ----------------
# Importers (e.g. the CommerceML connector) keep the catalog in step with another system.
# They go through the same use cases as the API, so every change publishes its events and
# bumps the pricing version (the price cache never serves a stale price), and an unchanged
# value writes nothing and publishes nothing.


@dataclass(frozen=True, slots=True)
class ProductFacts:
    id: uuid.UUID
    name: str
    description: str
    active: bool
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SkuFacts:
    id: uuid.UUID
    product_id: uuid.UUID
    code: str
    name: str
    unit: str
    active: bool
    attributes: dict[str, Any]


def _sku_facts(sku: Any) -> SkuFacts:
    return SkuFacts(
        id=sku.id,
        product_id=sku.product_id,
        code=sku.code,
        name=sku.name,
        unit=sku.unit,
        active=sku.active,
        attributes=dict(sku.attributes or {}),
    )


async def product_facts(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID
) -> ProductFacts | None:
    """A product's own fields, or None when it is gone."""
    product = await CatalogRepository(session, tenant_id).product(product_id)
    if product is None:
        return None
    return ProductFacts(
        id=product.id,
        name=product.name,
        description=product.description,
        active=product.active,
        attributes=dict(product.attributes or {}),
    )


async def sku_facts(
    session: AsyncSession, tenant_id: uuid.UUID, sku_id: uuid.UUID
) -> SkuFacts | None:
    sku = await CatalogRepository(session, tenant_id).sku(sku_id)
    return _sku_facts(sku) if sku is not None else None


async def sku_facts_by_code(
    session: AsyncSession, tenant_id: uuid.UUID, code: str
) -> SkuFacts | None:
    sku = await CatalogRepository(session, tenant_id).sku_by_code(code)
    return _sku_facts(sku) if sku is not None else None


async def upsert_product(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    product_id: uuid.UUID | None,
    changes: dict[str, Any],
) -> tuple[uuid.UUID, list[str]]:
    """Create a product (`product_id` None; `changes` holds name, description, active,
    attributes) or change only the given fields of an existing one.

    Returns its id and the fields that changed (`["created"]` for a new one). Raises
    pydantic's `ValidationError` for values the API would refuse, `ProductNotFound`."""
    from tradeflow.catalog import products
    from tradeflow.catalog.schemas import ProductIn, ProductPatch

    if product_id is None:
        product, _ = await products.create_product(
            session, tenant_id, ProductIn.model_validate(changes)
        )
        return product.id, ["created"]
    patch = ProductPatch.model_validate(changes)
    before = await product_facts(session, tenant_id, product_id)
    if before is None:
        raise products.ProductNotFound(f"No product {product_id}.")
    wanted = patch.model_dump(exclude_unset=True)
    changed = sorted(k for k, v in wanted.items() if v is not None and getattr(before, k) != v)
    if changed:
        await products.update_product(session, tenant_id, product_id, patch)
    return product_id, changed


async def upsert_sku(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    sku_id: uuid.UUID | None,
    product_id: uuid.UUID,
    changes: dict[str, Any],
) -> tuple[uuid.UUID, list[str]]:
    """Add a SKU to a product (`sku_id` None; `changes` holds code, name, unit, active,
    attributes) or change the given fields of an existing SKU (its code never changes).

    Returns its id and the changed fields (`["created"]` for a new one). Raises
    `ValidationError`, `SkuCodeTaken` (409), `ProductNotFound`, `SkuNotFound`."""
    from tradeflow.catalog import products
    from tradeflow.catalog.schemas import SkuIn, SkuPatch

    if sku_id is None:
        sku = await products.add_sku(session, tenant_id, product_id, SkuIn.model_validate(changes))
        return sku.id, ["created"]
    patch = SkuPatch.model_validate({k: v for k, v in changes.items() if k != "code"})
    before = await sku_facts(session, tenant_id, sku_id)
    if before is None:
        raise products.SkuNotFound(f"No SKU {sku_id}.")
    wanted = patch.model_dump(exclude_unset=True)
    changed = sorted(k for k, v in wanted.items() if v is not None and getattr(before, k) != v)
    if changed:
        await products.update_sku(session, tenant_id, sku_id, patch)
    return sku_id, changed


async def price_list_currency(
    session: AsyncSession, tenant_id: uuid.UUID, price_list_id: uuid.UUID
) -> str | None:
    """The price list's currency, or None when there is no such list."""
    price_list = await CatalogRepository(session, tenant_id).price_list(price_list_id)
    return price_list.currency if price_list is not None else None


async def set_list_prices(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    price_list_id: uuid.UUID,
    prices: dict[uuid.UUID, int],
) -> list[uuid.UUID]:
    """Set the single-unit tier (from quantity 1) of each SKU in a price list.

    Only prices that differ are written; when any did, the list announces one
    `price_list.changed` (entries_changed, with those SKUs) and the pricing version moves.
    Returns the SKUs whose price changed. Raises `PriceListNotFound`."""
    from tradeflow.catalog import prices as price_lists
    from tradeflow.catalog.models import PriceListEntry
    from tradeflow.catalog.schemas import MAX_UNIT_PRICE_MINOR

    repo = CatalogRepository(session, tenant_id)
    price_list = await price_lists._price_list(repo, price_list_id, lock=True)
    changed: list[uuid.UUID] = []
    for sku_id, minor in sorted(prices.items()):
        if not 0 <= minor <= MAX_UNIT_PRICE_MINOR:
            raise UnprocessableEntity(f"Unit price {minor} is out of range.", field="prices")
        entry = await repo.entry_for(price_list.id, sku_id, 1)
        if entry is None:
            await repo.add(
                PriceListEntry(
                    price_list_id=price_list.id,
                    sku_id=sku_id,
                    min_quantity=1,
                    unit_price_minor=minor,
                )
            )
        elif entry.unit_price_minor != minor:
            entry.unit_price_minor = minor
            entry.updated_at = utcnow()
        else:
            continue
        changed.append(sku_id)
    if changed:
        await session.flush()
        await price_lists._announce_list(repo, price_list, "entries_changed", sku_ids=changed)
    return changed


__all__ += [  # additive: the list above stays as it was
    "ProductFacts",
    "SkuFacts",
    "price_list_currency",
    "product_facts",
    "set_list_prices",
    "sku_facts",
    "sku_facts_by_code",
    "upsert_product",
    "upsert_sku",
]
