"""Demo data: a Beancount connector writing the demo tenant's journal under `$TRADEFLOW_HOME`.

Called by `tradeflow up --demo` (`tradeflow.demo`); adds `beancount_file` to
`demo-credentials.json`. When it first creates the connector it also places and
confirms a few orders for the demo customer, so the ledger and the file have
invoices in them once the worker has run. Re-running keeps what is there.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.integrations import service
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.kit.keyring import Keyring

CONNECTOR_NAME = "beancount"


async def seed(
    db: Database, settings: Settings, keyring: Keyring, creds: dict[str, Any]
) -> dict[str, Any]:
    tenant_id = uuid.UUID(str(creds["tenant_id"]))
    path = (settings.home.resolve() / "books" / "demo.beancount").as_posix()
    async with db.tenant_session(tenant_id) as session:
        existing = await IntegrationsRepository(session, tenant_id).instance_by_name(CONNECTOR_NAME)
        if existing is None:
            await _invoiced_orders(session, tenant_id, creds)
            await service.create_instance(
                session,
                tenant_id,
                keyring=keyring,
                kind="beancount",
                name=CONNECTOR_NAME,
                config={
                    "path": path,
                    "title": "Demo Seller journal",
                    "operating_currency": str(creds.get("currency") or "EUR"),
                },
            )
        else:
            path = str(existing.config.get("path", path))
        await session.commit()
    return {"beancount_file": path}


async def _invoiced_orders(
    session: AsyncSession, tenant_id: uuid.UUID, creds: dict[str, Any]
) -> None:
    """A few confirmed (invoiced) orders through the orders context's own use cases."""
    from tradeflow.identity.principal import ALL_SCOPES, Principal
    from tradeflow.kit.ids import uuid7
    from tradeflow.orders import service as orders
    from tradeflow.orders.schemas import OrderCreate

    skus = list(creds.get("skus") or [])
    if not creds.get("customer_id") or not skus:
        return
    seller = Principal(kind="api_key", id=uuid7(), tenant_id=tenant_id, scopes=ALL_SCOPES)
    for i in range(3):
        order = await orders.place_order(
            session,
            seller,
            OrderCreate.model_validate(
                {
                    "customer_id": creds["customer_id"],
                    "currency": creds.get("currency") or "EUR",
                    "lines": [{"sku": skus[i % len(skus)], "quantity": 2 + i}],
                    "reference": f"DEMO-{i + 1}",
                }
            ),
        )
        await orders.transition(
            session, seller, order.id, "confirm", if_match=orders.etag(order.version)
        )
