"""`GET /v1/prices/quote`: a customer's price for a SKU and quantity, and why.

Staff name the customer; a buyer quotes for their own company only (another
company's id answers 404, as if it did not exist).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from tradeflow.catalog import service
from tradeflow.catalog.schemas import MAX_QUANTITY, QuoteOut, RuleOut, SkuCode
from tradeflow.customers import service as customers
from tradeflow.errors import UnprocessableEntity
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.openapi import problems

router = APIRouter()

Read = Annotated[Principal, require_scopes("prices:read")]


@router.get(
    "/prices/quote",
    response_model=QuoteOut,
    tags=["prices"],
    responses=problems(401, 403, 404, 422, 429),
)
async def get_quote(
    principal: Read,
    session: TenantSession,
    sku: Annotated[SkuCode, Query(description="The SKU code.")],
    quantity: Annotated[int, Query(ge=1, le=MAX_QUANTITY)] = 1,
    customer_id: Annotated[
        uuid.UUID | None, Query(description="Required for staff; buyers: their own, the default.")
    ] = None,
    on: Annotated[
        AwareDatetime | None, Query(description="Price valid at this instant; default now.")
    ] = None,
) -> QuoteOut:
    """The customer's unit price for `quantity` of `sku`, and the rule that won, explained.

    Precedence: contract price > the customer's group price list > base price
    (less the group's discount); within a list, the highest tier whose
    `min_quantity` ≤ quantity; windows include their start, exclude their end.
    See docs/pricing.md. Unknown SKU or customer → 404; inactive SKU or no
    applicable price → 422.
    """
    if principal.is_buyer:
        if customer_id is not None and customer_id != principal.customer_id:
            raise customers.CustomerNotFound(f"No customer {customer_id}.", field="customer_id")
        customer_id = principal.customer_id
    if customer_id is None:
        raise UnprocessableEntity("customer_id is required.", field="customer_id")
    q = await service.quote(session, customer_id=customer_id, sku=sku, quantity=quantity, on=on)
    return _quote_out(q)


def _quote_out(q: service.PriceQuote) -> QuoteOut:
    return QuoteOut(
        customer_id=q.customer_id,
        sku=q.sku,
        sku_id=q.sku_id,
        product_id=q.product_id,
        name=q.name,
        unit=q.unit,
        quantity=q.quantity,
        on=q.on,
        unit_price_minor=q.unit_price_minor,
        amount_minor=q.amount_minor,
        currency=q.currency,
        rule=RuleOut(
            kind=q.rule.kind,
            id=q.rule.id,
            name=q.rule.name,
            min_quantity=q.rule.min_quantity,
            detail=q.rule.detail,
            considered=list(q.rule.considered),
        ),
    )
