"""`/v1/processors`: installed plugins, per-tenant settings validated by the plugin's model,
secrets write-only and encrypted at rest, one account per tenant, admin-only changes."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from orders.factories import World, buyer_headers, make_buyer, make_world
from payments.factories import sandbox_config
from payments.support import rows
from tradeflow.db import Database
from tradeflow.identity import service as identity
from tradeflow.identity.repository import IdentityRepository
from tradeflow.kit.keyring import DecryptionError, Keyring
from tradeflow.payments.configuration import secrets_aad
from tradeflow.payments.processors.registry import available
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


async def test_sandbox_is_installed_from_its_entry_point(client: AsyncClient, world: World) -> None:
    assert "sandbox" in available()
    r = await client.get("/v1/processors", headers=world.staff)
    assert r.status_code == 200
    sandbox = {p["name"]: p for p in r.json()}["sandbox"]
    assert sandbox["configured"] is False
    assert sandbox["enabled"] is False
    assert sandbox["webhook_url"].endswith("/v1/processor-webhooks/sandbox")
    assert {"api_key", "webhook_secret", "base_url"} <= set(sandbox["config_schema"]["properties"])
    missing = await client.get("/v1/processors/nope", headers=world.staff)
    assert missing.status_code == 404


async def test_secrets_are_write_only_and_encrypted_at_rest(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    account = await sandbox.create_account()
    config = sandbox_config(sandbox_proc, account)
    r = await client.put("/v1/processors/sandbox", json={"config": config}, headers=world.staff)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["configured"] is shown["enabled"] is True
    assert shown["secrets_set"] == ["api_key", "webhook_secret"]
    assert account["api_key"] not in r.text
    assert account["webhook_secret"] not in r.text
    assert shown["config"]["account_id"] == account["id"]

    (stored,) = await rows(
        rolled_back,
        "SELECT settings::text AS settings, secrets FROM processor_configs WHERE tenant_id = :t",
        t=world.tenant_id,
    )
    assert stored.secrets.startswith("tfe1.")
    assert account["api_key"] not in stored.secrets + stored.settings
    assert account["webhook_secret"] not in stored.secrets + stored.settings

    # Leaving the secrets out keeps them; other settings are replaced.
    kept: dict[str, Any] = {
        k: v for k, v in config.items() if k not in ("api_key", "webhook_secret")
    }
    kept["timeout_seconds"] = 7
    r = await client.put(
        "/v1/processors/sandbox", json={"config": kept, "enabled": False}, headers=world.staff
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False
    assert r.json()["config"]["timeout_seconds"] == 7
    (again,) = await rows(
        rolled_back, "SELECT secrets FROM processor_configs WHERE tenant_id = :t", t=world.tenant_id
    )
    opened = keyring.decrypt_str(again.secrets, aad=secrets_aad(world.tenant_id, "sandbox"))
    assert account["api_key"] in opened
    # Bound to its row: the ciphertext does not open as another tenant's.
    with pytest.raises(DecryptionError):
        keyring.decrypt_str(again.secrets, aad=secrets_aad(world.customer_id, "sandbox"))


async def test_invalid_settings_name_the_field(client: AsyncClient, world: World) -> None:
    r = await client.put(
        "/v1/processors/sandbox",
        json={"config": {"base_url": "ftp://x", "account_id": "a", "timeout_seconds": 0}},
        headers=world.staff,
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"config.base_url", "config.api_key", "config.webhook_secret"} <= fields
    assert "config.timeout_seconds" in fields
    extra = await client.put(
        "/v1/processors/sandbox", json={"config": {}, "colour": "red"}, headers=world.staff
    )
    assert extra.status_code == 422
    unknown = await client.put("/v1/processors/nope", json={"config": {}}, headers=world.staff)
    assert unknown.status_code == 404


async def test_one_account_belongs_to_one_tenant(
    client: AsyncClient,
    world: World,
    rolled_back: Database,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
) -> None:
    account = await sandbox.create_account()
    config = sandbox_config(sandbox_proc, account)
    first = await client.put("/v1/processors/sandbox", json={"config": config}, headers=world.staff)
    assert first.status_code == 200
    other = await make_world(rolled_back)
    r = await client.put("/v1/processors/sandbox", json={"config": config}, headers=other.staff)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("processor-account-in-use")


async def test_only_owners_and_admins_change_processors(
    client: AsyncClient, world: World, rolled_back: Database
) -> None:
    async with rolled_back.system_session() as s:
        finance = await identity.create_api_key(
            IdentityRepository(s, world.tenant_id),
            name="finance",
            scopes=frozenset({"payments:read", "payments:write"}),
            actor=None,
        )
        await s.commit()
    headers = {"Authorization": f"Bearer {finance.token}"}
    assert (await client.get("/v1/processors", headers=headers)).status_code == 200
    r = await client.put("/v1/processors/sandbox", json={"config": {}}, headers=headers)
    assert r.status_code == 403
    assert "tenant:write" in r.json()["detail"]
    buyer = await buyer_headers(client, world, await make_buyer(world))
    assert (await client.get("/v1/processors", headers=buyer)).status_code == 403


async def test_private_processor_addresses_are_refused_unless_allowed(
    settings: Any, rolled_back: Database, keyring: Keyring, world: World
) -> None:
    from httpx import ASGITransport

    from tradeflow.app import create_app

    strict = settings.model_copy(update={"webhooks_allow_private": False})
    app = create_app(strict, rolled_back, keyring=keyring)
    secrets = {"account_id": "acct_x", "api_key": "sk_sandbox_x", "webhook_secret": "whsec_eA=="}
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        for url in (
            "http://127.0.0.1:8100",
            "http://10.1.2.3",
            "http://169.254.169.254",
            "http://[::1]:8100",
            "http://localhost:8100",
        ):
            r = await c.put(
                "/v1/processors/sandbox",
                json={"config": {"base_url": url, **secrets}},
                headers=world.staff,
            )
            assert r.status_code == 422, (url, r.text)
            assert r.json()["type"].endswith("/invalid-processor-config")
            assert [e["field"] for e in r.json()["errors"]] == ["config.base_url"]
        assert (
            await rows(
                rolled_back,
                "SELECT 1 FROM processor_configs WHERE tenant_id = :t",
                t=world.tenant_id,
            )
            == []
        )
        public = await c.put(
            "/v1/processors/sandbox",
            json={"config": {"base_url": "https://sandbox.example.com", **secrets}},
            headers=world.staff,
        )
        assert public.status_code == 200, public.text
    # The test settings allow private addresses (the sandbox listens on 127.0.0.1), as an
    # operator can with TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE=true.
    assert settings.webhooks_allow_private
