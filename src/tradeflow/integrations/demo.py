"""Demo data: a Beancount connector writing the demo tenant's journal under `$TRADEFLOW_HOME`.

Called by `tradeflow up --demo` (`tradeflow.demo`); adds `beancount_file` to
`demo-credentials.json`. Re-running keeps the existing connector. The file fills
as the demo's orders are invoiced and paid (the worker appends each journal
entry as the ledger posts it).
"""

from __future__ import annotations

import uuid
from typing import Any

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
