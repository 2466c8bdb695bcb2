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
