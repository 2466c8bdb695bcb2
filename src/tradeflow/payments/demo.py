"""Demo data for payments: the sandbox processor, enabled for the demo tenant (`tradeflow.demo`).

The demo seller "signs up" with the local sandbox by writing a merchant
account straight into the sandbox's database (the sandbox itself starts a
moment later with `tradeflow up --demo`), then enables the `sandbox`
processor with that account's keys. Re-running keeps a still-valid account
and only refreshes the URLs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.payments import configuration
from tradeflow.payments.processors.sandbox import SandboxConfig
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import ProcessorConfigIn
from tradeflow.sandbox.local import LocalSandbox, local_sandbox, sandbox_database_url
from tradeflow.sandbox.store import Store

DEMO_PAYMENT_METHOD = "pm_sandbox_ok"


async def seed_demo_payments(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    keyring: Keyring,
    store: Store,
    sandbox: LocalSandbox,
    webhook_url: str,
) -> dict[str, Any]:
    """Enable the sandbox processor for `tenant_id` with a (kept or new) sandbox account."""
    row = await PaymentsRepository(session, tenant_id).config("sandbox")
    keys: dict[str, str] | None = None
    if row is not None:
        old = configuration.load(keyring, row).config
        assert isinstance(old, SandboxConfig)
        account = await store.account_by_key(old.api_key.get_secret_value())
        if account is not None and account.id == old.account_id:
            keys = {
                "account_id": old.account_id,
                "api_key": old.api_key.get_secret_value(),
                "webhook_secret": old.webhook_secret.get_secret_value(),
            }
    if keys is None:
        created = await store.create_account("Demo Seller", webhook_url)
        keys = {
            "account_id": created["id"],
            "api_key": created["api_key"],
            "webhook_secret": created["webhook_secret"],
        }
    await store.set_webhook_url(keys["account_id"], webhook_url)
    await configuration.configure(
        session,
        keyring,
        tenant_id=tenant_id,
        name="sandbox",
        body=ProcessorConfigIn(enabled=True, config={"base_url": sandbox.api_url, **keys}),
        allow_private=True,  # the demo's own sandbox, on 127.0.0.1 by construction
    )
    return {
        "processor": "sandbox",
        "sandbox_account_id": keys["account_id"],
        "sandbox_api_url": sandbox.api_url,
        "sandbox_control_url": sandbox.control_url,
        "payment_method": DEMO_PAYMENT_METHOD,
    }


async def seed(
    db: Database, settings: Settings, keyring: Keyring, creds: dict[str, Any]
) -> dict[str, Any]:
    tenant_id = uuid.UUID(creds["tenant_id"])
    store = Store(await asyncio.to_thread(sandbox_database_url, db.url))
    try:
        await store.init()
        async with db.tenant_session(tenant_id) as session:
            out = await seed_demo_payments(
                session,
                tenant_id,
                keyring=keyring,
                store=store,
                sandbox=local_sandbox(settings),
                webhook_url=f"{settings.base_url}/v1/processor-webhooks/sandbox",
            )
            await session.commit()
    finally:
        await store.dispose()
    return out
