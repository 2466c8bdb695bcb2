"""Demo data for orders: a default tax rate, so demo orders carry tax (see `tradeflow.demo`)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.orders import taxes
from tradeflow.orders.repository import OrdersRepository
from tradeflow.orders.schemas import TaxRateIn

DEMO_TAX = TaxRateIn(code="STD", name="Standard rate", rate=Decimal(20), is_default=True)


async def seed_demo_orders(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Add the demo's default tax rate unless it exists (re-running changes nothing)."""
    if await OrdersRepository(session, tenant_id).tax_rate_by_code(DEMO_TAX.code) is None:
        await taxes.create_tax_rate(session, tenant_id, DEMO_TAX)
    return {"tax_code": DEMO_TAX.code}


async def seed(
    db: Database, settings: Settings, keyring: Keyring, creds: dict[str, Any]
) -> dict[str, Any]:
    tenant_id = uuid.UUID(creds["tenant_id"])
    async with db.tenant_session(tenant_id) as session:
        out = await seed_demo_orders(session, tenant_id)
        await session.commit()
    return out
