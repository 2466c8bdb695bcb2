"""Demo data for customers and the catalog (see `tradeflow.demo`).

Adds to `demo-credentials.json`: `customer_id`, `currency`, `skus`,
`buyer_email`, `buyer_password` (a buyer with a 500.00 EUR spending limit),
`approver_email`, `approver_password`, `customer_group_id`. The demo customer
is in the "Trade customers" group, so its prices show every rule: a contract
price (NUT-M8), the group's Trade list (DRILL-18V), and base prices less the
group's 5 % (the bolts, with a volume tier from 10 boxes).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog import prices, products
from tradeflow.catalog.repository import CatalogRepository
from tradeflow.catalog.schemas import ContractPriceIn, PriceListIn, ProductIn
from tradeflow.config import Settings
from tradeflow.customers.demo import seed_demo_customers
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

PRODUCTS: list[dict[str, Any]] = [
    {
        "name": "Hex bolt M8, zinc plated",
        "attributes": {"standard": "DIN 933", "material": "steel 8.8"},
        "skus": [
            {"code": "BOLT-M8-40", "name": "Hex bolt M8×40, box of 100", "unit": "box"},
            {"code": "BOLT-M8-50", "name": "Hex bolt M8×50, box of 100", "unit": "box"},
        ],
    },
    {
        "name": "Hex nut M8",
        "attributes": {"standard": "DIN 934"},
        "skus": [{"code": "NUT-M8", "name": "Hex nut M8, box of 200", "unit": "box"}],
    },
    {
        "name": "Cordless drill 18 V",
        "attributes": {"voltage_v": 18, "battery": "2 × 2.0 Ah"},
        "skus": [{"code": "DRILL-18V", "name": "Cordless drill 18 V with case", "unit": "each"}],
    },
]
BASE_PRICES = [
    {"sku": "BOLT-M8-40", "min_quantity": 1, "unit_price_minor": 1290},
    {"sku": "BOLT-M8-40", "min_quantity": 10, "unit_price_minor": 1190},
    {"sku": "BOLT-M8-50", "min_quantity": 1, "unit_price_minor": 1390},
    {"sku": "NUT-M8", "min_quantity": 1, "unit_price_minor": 590},
    {"sku": "DRILL-18V", "min_quantity": 1, "unit_price_minor": 18900},
]
SKUS = ["BOLT-M8-40", "BOLT-M8-50", "NUT-M8", "DRILL-18V"]


async def seed_demo_catalog(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    customer_id: uuid.UUID,
    group_id: uuid.UUID,
) -> dict[str, Any]:
    """Products, a base and a group price list, a contract price — once."""
    repo = CatalogRepository(session, tenant_id)
    if await repo.sku_by_code(SKUS[0]) is None:
        for product in PRODUCTS:
            await products.create_product(session, tenant_id, ProductIn.model_validate(product))
        await prices.create_price_list(
            session,
            tenant_id,
            PriceListIn.model_validate(
                {"name": "Base EUR", "currency": "EUR", "entries": BASE_PRICES}
            ),
        )
        await prices.create_price_list(
            session,
            tenant_id,
            PriceListIn.model_validate(
                {
                    "name": "Trade EUR",
                    "currency": "EUR",
                    "customer_group_id": str(group_id),
                    "entries": [{"sku": "DRILL-18V", "unit_price_minor": 16900}],
                }
            ),
        )
        await prices.create_contract_price(
            session,
            tenant_id,
            ContractPriceIn(
                customer_id=customer_id, sku="NUT-M8", unit_price_minor=450, note="Frame contract"
            ),
        )
    return {"skus": SKUS}


async def seed(
    db: Database, settings: Settings, keyring: Keyring, creds: dict[str, Any]
) -> dict[str, Any]:
    tenant_id = uuid.UUID(creds["tenant_id"])
    async with db.tenant_session(tenant_id) as session:
        out = await seed_demo_customers(session, tenant_id, old=creds)
        out |= await seed_demo_catalog(
            session,
            tenant_id,
            customer_id=uuid.UUID(out["customer_id"]),
            group_id=uuid.UUID(out["customer_group_id"]),
        )
        await session.commit()
    return out
