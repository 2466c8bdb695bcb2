"""Demo data: the demo seller's chart of accounts, so the books are ready before the first
invoice (the demo's orders and payments are then booked by the worker as they happen)."""

from __future__ import annotations

import uuid
from typing import Any

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.ledger import service


async def seed(
    db: Database, settings: Settings, keyring: Keyring, creds: dict[str, Any]
) -> dict[str, Any]:
    tenant_id = uuid.UUID(str(creds["tenant_id"]))
    async with db.tenant_session(tenant_id) as session:
        await service.ensure_chart(session, tenant_id=tenant_id)
        await session.commit()
    return {}
