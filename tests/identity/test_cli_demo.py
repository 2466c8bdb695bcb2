"""`tradeflow tenants|users|keys` against a real database, and idempotent demo seeding."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from identity_factories import bearer, make_tenant, make_user
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from tradeflow.cli import app as cli
from tradeflow.cli_admin import register
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.identity import mfa
from tradeflow.identity.models import User
from tradeflow.identity.principal import ALL_SCOPES
from tradeflow.kit.keyring import Keyring, read_key_file, save_key_file

if not any(g.name == "tenants" for g in cli.registered_groups):
    register(cli)

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("TRADEFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("TRADEFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TRADEFLOW_LOG_FORMAT", "console")
    monkeypatch.setenv("TRADEFLOW_LOG_LEVEL", "warning")
    monkeypatch.delenv("TRADEFLOW_MASTER_KEY", raising=False)
    return tmp_path


async def invoke(*args: str, input: str | None = None) -> Result:
    # The commands run their own event loop (asyncio.run): give them a thread.
    return await asyncio.to_thread(runner.invoke, cli, list(args), input=input)


async def test_tenant_and_user_commands(cli_env: Path, committed: Database) -> None:
    r = await invoke("tenants", "create", "Acme Wholesale", "--mfa-required")
    assert r.exit_code == 0, r.output
    assert "acme-wholesale" in r.output
    r = await invoke("tenants", "create", "Acme Wholesale")
    assert r.exit_code == 1
    assert "taken" in r.output
    r = await invoke("tenants", "list")
    assert "acme-wholesale" in r.output
    assert "yes" in r.output

    r = await invoke(
        "users",
        "create",
        "-t",
        "acme-wholesale",
        "--email",
        "Boss@Acme.example.com",
        "--role",
        "owner",
        "--password",
        "a long owner passphrase",
    )
    assert r.exit_code == 0, r.output
    r = await invoke(
        "users",
        "create",
        "-t",
        "acme-wholesale",
        "--email",
        "sam@acme.example.com",
        "--role",
        "sales",
        input="another long passphrase\nanother long passphrase\n",
    )
    assert r.exit_code == 0, r.output
    r = await invoke(
        "users",
        "create",
        "-t",
        "acme-wholesale",
        "--email",
        "weak@acme.example.com",
        "--role",
        "sales",
        "--password",
        "password1234",
    )
    assert r.exit_code == 1
    assert "common" in r.output
    r = await invoke("users", "set-role", "-t", "acme-wholesale", "sam@acme.example.com", "finance")
    assert r.exit_code == 0, r.output
    r = await invoke("users", "set-role", "-t", "acme-wholesale", "sam@acme.example.com", "emperor")
    assert r.exit_code != 0
    r = await invoke("users", "disable", "-t", "acme-wholesale", "sam@acme.example.com")
    assert r.exit_code == 0, r.output
    r = await invoke("users", "disable", "-t", "acme-wholesale", "boss@acme.example.com")
    assert r.exit_code == 1
    assert "last active owner" in r.output
    r = await invoke("users", "list", "-t", "acme-wholesale")
    assert r.exit_code == 0
    assert "boss@acme.example.com" in r.output
    assert "finance" in r.output
    r = await invoke("users", "list", "-t", "nope")
    assert r.exit_code == 1

    async with committed.system_session() as s:
        sam = (
            await s.execute(select(User).where(User.email == "sam@acme.example.com"))
        ).scalar_one()
        assert (sam.role, sam.active) == ("finance", False)
        kinds = (
            (
                await s.execute(
                    text("SELECT kind FROM security_events WHERE user_id = :u"), {"u": sam.id}
                )
            )
            .scalars()
            .all()
        )
    assert {"user_created", "role_changed", "user_disabled"} <= set(kinds)


async def test_reset_mfa_command(cli_env: Path, committed: Database, keyring: Keyring) -> None:
    tenant = await make_tenant(committed)
    made = await make_user(committed, tenant, with_totp=True, keyring=keyring)
    r = await invoke("users", "reset-mfa", "-t", tenant.slug, made.email)
    assert r.exit_code == 0, r.output
    async with committed.system_session() as s:
        user = (await s.execute(select(User).where(User.id == made.id))).scalar_one()
        assert user.totp_secret is None
        left = (
            await s.execute(
                text("SELECT count(*) FROM recovery_codes WHERE user_id = :u"), {"u": made.id}
            )
        ).scalar_one()
    assert left == 0


async def test_keys_rotate_rewraps_and_old_data_still_decrypts(
    cli_env: Path, committed: Database, settings: Settings
) -> None:
    key_file = cli_env / "master-keys.json"
    ring = Keyring(keys={"k1": b"\x05" * 32}, active="k1", source=key_file)
    save_key_file(key_file, ring)
    tenant = await make_tenant(committed)
    users = [await make_user(committed, tenant, with_totp=True, keyring=ring) for _ in range(3)]
    async with committed.system_session() as s:
        before = dict(
            (
                await s.execute(
                    select(User.id, User.totp_secret).where(User.tenant_id == tenant.id)
                )
            ).all()
        )
    assert {Keyring.key_id_of(v) for v in before.values()} == {"k1"}

    r = await invoke("keys", "rotate", "--batch-size", "2")
    assert r.exit_code == 0, r.output
    assert "re-wrapped 3 secret(s)" in r.output
    rotated = read_key_file(key_file)
    assert rotated.active != "k1"
    assert set(rotated.keys) == {"k1", rotated.active}
    async with committed.system_session() as s:
        after = dict(
            (
                await s.execute(
                    select(User.id, User.totp_secret).where(User.tenant_id == tenant.id)
                )
            ).all()
        )
        rows = {
            u.id: u
            for u in (await s.execute(select(User).where(User.tenant_id == tenant.id))).scalars()
        }
    for made in users:
        assert Keyring.key_id_of(after[made.id]) == rotated.active
        # The seed is unchanged and opens under the new ring — and no longer needs the old key.
        assert mfa.decrypt_seed(rotated, rows[made.id], after[made.id]) == made.totp_secret
        only_new = Keyring(
            keys={rotated.active: rotated.keys[rotated.active]}, active=rotated.active
        )
        assert mfa.decrypt_seed(only_new, rows[made.id], after[made.id]) == made.totp_secret

    # A second run adds another key and re-wraps again; --rewrap-only with nothing to do is a no-op.
    r = await invoke("keys", "rotate", "--rewrap-only")
    assert r.exit_code == 0, r.output
    assert "re-wrapped 0 secret(s)" in r.output

    # A process that started before the rotation learns the new key from the file on demand.
    stale = read_key_file(key_file)
    stale.keys.pop(rotated.active)
    stale.active = "k1"
    from tradeflow.identity import tokens

    tokens._last_reload = 0.0
    assert mfa.decrypt_seed(stale, rows[users[0].id], after[users[0].id]) == users[0].totp_secret


async def test_keys_rotate_refuses_env_keyring(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    monkeypatch.setenv("TRADEFLOW_MASTER_KEY", "e1:" + base64.b64encode(b"\x01" * 32).decode())
    r = await invoke("keys", "rotate")
    assert r.exit_code == 2
    assert "--rewrap-only" in r.output


async def test_demo_seeding_is_idempotent_and_repairs(
    committed: Database, settings: Settings, keyring: Keyring, database_url: str, tmp_path: Path
) -> None:
    from tradeflow.app import create_app
    from tradeflow.demo import seed_demo

    demo_settings = settings.model_copy(update={"home": tmp_path})
    first = await asyncio.to_thread(seed_demo, demo_settings, database_url, keyring)
    path = tmp_path / "demo-credentials.json"
    assert json.loads(path.read_text()) == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert set(first) >= {"tenant_id", "email", "password", "totp_secret", "api_key", "base_url"}

    app = create_app(settings, committed, keyring=keyring)
    async with AsyncClient(
        transport=ASGITransport(app=app, client=("127.0.0.1", 5)), base_url="http://t"
    ) as c:
        import pyotp

        ok = await c.post(
            "/v1/auth/login",
            json={
                "email": first["email"],
                "password": first["password"],
                "totp_code": pyotp.TOTP(first["totp_secret"]).now(),
            },
        )
        assert ok.status_code == 200, ok.text
        me = (await c.get("/v1/me", headers=bearer(first["api_key"]))).json()
        assert me["tenant_id"] == first["tenant_id"]
        assert set(me["scopes"]) == ALL_SCOPES

        second = await asyncio.to_thread(seed_demo, demo_settings, database_url, keyring)
        assert second == first

        # Damage: the file loses the password and gains another context's key;
        # the API key is revoked.
        data: dict[str, Any] = json.loads(path.read_text())
        del data["password"]
        data["someone_elses_key"] = "kept-by-identity"
        path.write_text(json.dumps(data))
        async with committed.system_session() as s:
            await s.execute(text("UPDATE api_keys SET revoked_at = now()"))
            await s.commit()
        third = await asyncio.to_thread(seed_demo, demo_settings, database_url, keyring)
        assert third["someone_elses_key"] == "kept-by-identity"
        assert third["tenant_id"] == first["tenant_id"]
        assert third["totp_secret"] == first["totp_secret"]
        assert third["api_key"] != first["api_key"]
        assert third["password"] != first["password"]
        assert (await c.get("/v1/me", headers=bearer(third["api_key"]))).status_code == 200
        from tradeflow.identity import totp
        from tradeflow.kit.time import utcnow

        next_code = totp.code_at(third["totp_secret"], totp.step_of(utcnow()) + 1)
        ok = await c.post(
            "/v1/auth/login",
            json={"email": third["email"], "password": third["password"], "totp_code": next_code},
        )
        assert ok.status_code == 200, ok.text
