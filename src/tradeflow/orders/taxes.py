"""The per-tenant tax rate table. A rate's percentage never changes once created (orders keep
their own snapshot anyway); a new rate is a new code, an old one is deactivated."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from tradeflow.orders.errors import DuplicateTaxRate, TaxRateNotFound
from tradeflow.orders.models import TaxRate
from tradeflow.orders.repository import OrdersRepository
from tradeflow.orders.schemas import TaxRateIn, TaxRatePatch


async def create_tax_rate(session: Any, tenant_id: uuid.UUID, body: TaxRateIn) -> TaxRate:
    repo = OrdersRepository(session, tenant_id)
    if await repo.tax_rate_by_code(body.code) is not None:
        raise DuplicateTaxRate(f"Tax rate {body.code!r} exists.", field="code")
    if body.is_default:
        await repo.clear_default_tax_rate()
    row = TaxRate(
        tenant_id=tenant_id,
        code=body.code,
        name=body.name,
        rate=body.rate,
        is_default=body.is_default,
        active=True,
    )
    repo.add(row)
    try:
        async with session.begin_nested():
            await repo.flush()
    except IntegrityError:  # a concurrent create with the same code won the race
        raise DuplicateTaxRate(f"Tax rate {body.code!r} exists.", field="code") from None
    return row


async def get_tax_rate(session: Any, tenant_id: uuid.UUID, rate_id: uuid.UUID) -> TaxRate:
    row = await OrdersRepository(session, tenant_id).tax_rate(rate_id)
    if row is None:
        raise TaxRateNotFound(f"No tax rate {rate_id}.")
    return row


async def update_tax_rate(
    session: Any, tenant_id: uuid.UUID, rate_id: uuid.UUID, body: TaxRatePatch
) -> TaxRate:
    repo = OrdersRepository(session, tenant_id)
    row = await get_tax_rate(session, tenant_id, rate_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if changes.get("is_default"):
        await repo.clear_default_tax_rate(except_id=row.id)
    if changes.get("active") is False:
        changes["is_default"] = False  # an inactive rate cannot be the default
    for key, value in changes.items():
        setattr(row, key, value)
    await repo.flush()
    return row
