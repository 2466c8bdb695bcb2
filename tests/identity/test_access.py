"""API keys, role scopes, user management, security events, and the request's unit of work."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from identity_factories import (
    access_token,
    bearer,
    install_key_cache,
    login,
    make_api_key,
    make_tenant,
    make_user,
)
from sqlalchemy import select, text
from test_login import assert_problem, events

from tradeflow.db import Database
from tradeflow.identity.auth import Authenticated, TenantSession
from tradeflow.identity.key_cache import TTL_SECONDS
from tradeflow.identity.models import ApiKey, User
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import isoformat, utcnow


async def test_api_key_lifecycle(client: AsyncClient, app: Any, rolled_back: Database) -> None:
    clock = install_key_cache(app)
    tenant = await make_tenant(rolled_back)
    admin = await make_user(rolled_back, tenant, role="admin")
    token = await access_token(client, admin)
    r = await client.post(
        "/v1/api-keys",
        headers={**bearer(token), "Idempotency-Key": "k-1"},
        json={"name": "erp sync", "scopes": ["orders:read", "catalog:read"]},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("tf_live_" + created["prefix"] + "_")
    assert len(key) >= len("tf_live_") + 8 + 1 + 43
    assert created["created_by"] == str(admin.id)
    # The secret is never shown again.
    listed = (await client.get("/v1/api-keys", headers=bearer(token))).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    got = await client.get(f"/v1/api-keys/{created['id']}", headers=bearer(token))
    assert "key" not in got.json()
    async with rolled_back.system_session() as s:
        row = (
            await s.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])))
        ).scalar_one()
        assert key.encode() not in row.key_hash
        assert row.last_used_at is None
    # Using it: /v1/me shows the key, its tenant and only its scopes.
    me = await client.get("/v1/me", headers=bearer(key))
    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "api_key"
    assert me.json()["tenant_id"] == str(tenant.id)
    assert me.json()["scopes"] == ["catalog:read", "orders:read"]
    assert me.json()["api_key_name"] == "erp sync"
    # Its scopes bound it: it cannot read users.
    assert_problem(await client.get("/v1/users", headers=bearer(key)), 403, "insufficient-scope")
    async with rolled_back.system_session() as s:
        used = (
            await s.execute(select(ApiKey.last_used_at).where(ApiKey.prefix == created["prefix"]))
        ).scalar_one()
    assert used is not None
    # Revoked: refused once the key cache's TTL has passed; revoking again is harmless.
    r = await client.post(f"/v1/api-keys/{created['id']}/revoke", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    assert (
        await client.post(f"/v1/api-keys/{created['id']}/revoke", headers=bearer(token))
    ).status_code == 200
    clock.advance(TTL_SECONDS)
    body = assert_problem(await client.get("/v1/me", headers=bearer(key)), 401, "invalid-token")
    assert "revoked" in body["detail"]
    kinds = [e.kind for e in await events(rolled_back, tenant.id)]
    assert kinds.count("api_key_created") == 1
    assert kinds.count("api_key_revoked") == 1


async def test_api_key_expiry_and_malformed_keys(
    client: AsyncClient, app: Any, rolled_back: Database
) -> None:
    clock = install_key_cache(app)
    tenant = await make_tenant(rolled_back)
    key_id, key = await make_api_key(rolled_back, tenant, expires_at=utcnow() + timedelta(hours=1))
    assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200
    async with rolled_back.system_session() as s:
        await s.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": key_id},
        )
        await s.commit()
    clock.advance(TTL_SECONDS)  # the cached copy still has the old expiry until then
    body = assert_problem(await client.get("/v1/me", headers=bearer(key)), 401, "invalid-token")
    assert "expired" in body["detail"]
    _, good = await make_api_key(rolled_back, tenant)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for bad in (tampered, "tf_live_short", "tf_live_abcdefgh_" + "x" * 43):
        assert_problem(await client.get("/v1/me", headers=bearer(bad)), 401, "invalid-token")


async def test_api_key_scopes_must_be_held_by_creator(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    # A key holding api_keys:write but not users:write cannot mint a key with users:write.
    _, limited = await make_api_key(
        rolled_back, tenant, scopes=frozenset({"api_keys:write", "orders:read"})
    )
    r = await client.post(
        "/v1/api-keys", headers=bearer(limited), json={"name": "x", "scopes": ["users:write"]}
    )
    body = assert_problem(r, 422, "scopes-not-held")
    assert body["scopes"] == ["users:write"]
    ok = await client.post(
        "/v1/api-keys", headers=bearer(limited), json={"name": "x", "scopes": ["orders:read"]}
    )
    assert ok.status_code == 201, ok.text
    unknown = await client.post(
        "/v1/api-keys", headers=bearer(limited), json={"name": "x", "scopes": ["nope:read"]}
    )
    assert_problem(unknown, 422, "validation-error")
    past = await client.post(
        "/v1/api-keys",
        headers=bearer(limited),
        json={
            "name": "x",
            "scopes": ["orders:read"],
            "expires_at": isoformat(utcnow() - timedelta(days=1)),
        },
    )
    assert_problem(past, 422, "unprocessable-entity")


async def test_auditor_reads_but_cannot_write(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    auditor = await make_user(rolled_back, tenant, role="auditor")
    token = await access_token(client, auditor)
    for path in ("/v1/users", "/v1/api-keys", "/v1/security-events", "/v1/tenant"):
        assert (await client.get(path, headers=bearer(token))).status_code == 200, path
    denied = [
        await client.post(
            "/v1/users",
            headers=bearer(token),
            json={"email": "n@example.com", "password": "a long password", "role": "sales"},
        ),
        await client.post(
            "/v1/api-keys", headers=bearer(token), json={"name": "x", "scopes": ["orders:read"]}
        ),
        await client.patch("/v1/tenant", headers=bearer(token), json={"name": "renamed"}),
        await client.patch(
            f"/v1/users/{auditor.id}", headers=bearer(token), json={"role": "admin"}
        ),
    ]
    for r in denied:
        body = assert_problem(r, 403, "insufficient-scope")
        assert body["missing"]


async def test_sales_cannot_manage_users(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    sales = await make_user(rolled_back, tenant, role="sales")
    token = await access_token(client, sales)
    assert_problem(await client.get("/v1/users", headers=bearer(token)), 403, "insufficient-scope")
    r = await client.post(
        "/v1/users",
        headers=bearer(token),
        json={"email": "n@example.com", "password": "a long password", "role": "sales"},
    )
    body = assert_problem(r, 403, "insufficient-scope")
    assert body["missing"] == ["users:write"]
    assert_problem(
        await client.get("/v1/api-keys", headers=bearer(token)), 403, "insufficient-scope"
    )


async def test_user_management_by_owner_and_admin(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant, role="owner")
    admin = await make_user(rolled_back, tenant, role="admin")
    owner_token, admin_token = await access_token(client, owner), await access_token(client, admin)
    body = {
        "email": "New.Person@Example.com",
        "password": "a long enough passphrase",
        "role": "finance",
    }
    r = await client.post(
        "/v1/users", headers={**bearer(admin_token), "Idempotency-Key": "u1"}, json=body
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/users/{r.json()['id']}"
    new = r.json()
    assert new["email"] == "new.person@example.com"
    assert new["mfa_enabled"] is False
    # Idempotent replay returns the same user; a different body with the key is refused.
    again = await client.post(
        "/v1/users", headers={**bearer(admin_token), "Idempotency-Key": "u1"}, json=body
    )
    assert again.status_code == 201
    assert again.json()["id"] == new["id"]
    dup = await client.post(
        "/v1/users", headers=bearer(admin_token), json={**body, "email": "NEW.person@example.com"}
    )
    assert_problem(dup, 409, "email-taken")
    weak = await client.post(
        "/v1/users",
        headers=bearer(admin_token),
        json={**body, "email": "w@example.com", "password": "password1234"},
    )
    assert_problem(weak, 422, "weak-password")
    # Only an owner makes owners.
    r = await client.patch(
        f"/v1/users/{new['id']}", headers=bearer(admin_token), json={"role": "owner"}
    )
    assert_problem(r, 403, "insufficient-scope")
    r = await client.patch(
        f"/v1/users/{new['id']}", headers=bearer(owner_token), json={"role": "owner"}
    )
    assert r.status_code == 200
    assert r.json()["role"] == "owner"
    # The last active owner stays: demote one owner, then the other is the last.
    assert (
        await client.patch(
            f"/v1/users/{new['id']}", headers=bearer(owner_token), json={"role": "admin"}
        )
    ).status_code == 200
    r = await client.patch(
        f"/v1/users/{owner.id}", headers=bearer(owner_token), json={"active": False}
    )
    assert_problem(r, 409, "last-owner")
    r = await client.patch(
        f"/v1/users/{owner.id}", headers=bearer(owner_token), json={"role": "admin"}
    )
    assert_problem(r, 409, "last-owner")
    listed = (await client.get("/v1/users?limit=2", headers=bearer(admin_token))).json()
    assert len(listed["items"]) == 2
    assert listed["next_cursor"]
    rest = (
        await client.get(
            f"/v1/users?limit=2&cursor={listed['next_cursor']}", headers=bearer(admin_token)
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    kinds = [e.kind for e in await events(rolled_back, tenant.id)]
    assert kinds.count("role_changed") == 2
    assert "user_created" in kinds


async def test_security_events_endpoint_filters(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant)
    await client.post("/v1/auth/login", json={"email": owner.email, "password": "not the password"})
    token = await access_token(client, owner)
    r = await client.get("/v1/security-events?kind=login_failed", headers=bearer(token))
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 1
    assert items[0]["user_id"] == str(owner.id)
    assert items[0]["ip"] == "127.0.0.1"
    assert items[0]["details"]["reason"] == "password"
    mine = (
        await client.get(f"/v1/security-events?user_id={owner.id}", headers=bearer(token))
    ).json()["items"]
    assert {e["kind"] for e in mine} >= {"login_failed", "login_succeeded", "user_created"}


async def test_admin_resets_mfa(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    admin = await make_user(rolled_back, tenant, role="admin")
    staff = await make_user(rolled_back, tenant, role="sales", with_totp=True, keyring=keyring)
    token = await access_token(client, admin)
    r = await client.post(f"/v1/users/{staff.id}/reset-mfa", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["mfa_enabled"] is False
    assert (await login(client, staff)).status_code == 200


async def test_mfa_self_service_disable_and_regenerate(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    login_code = made.code()
    token = (await login(client, made, totp_code=login_code)).json()["access_token"]
    status = (await client.get("/v1/me/mfa", headers=bearer(token))).json()
    assert status == {
        "enabled": True,
        "pending": False,
        "recovery_codes_remaining": 10,
        "required_by_policy": False,
    }
    assert_problem(
        await client.post("/v1/me/mfa/enrol", headers=bearer(token)), 409, "mfa-already-enabled"
    )
    # The code used to log in cannot be used again for a sensitive change.
    assert_problem(
        await client.post(
            "/v1/me/mfa/recovery-codes", headers=bearer(token), json={"code": login_code}
        ),
        401,
        "invalid-mfa-code",
    )
    next_code = made.code(+1)
    r = await client.post(
        "/v1/me/mfa/recovery-codes", headers=bearer(token), json={"code": next_code}
    )
    assert r.status_code == 200
    fresh = r.json()["recovery_codes"]
    assert set(fresh).isdisjoint(made.recovery_codes or [])
    assert_problem(
        await client.post("/v1/me/mfa/disable", headers=bearer(token), json={"code": "000000"}),
        401,
        "invalid-mfa-code",
    )
    # The code just spent on the regeneration is spent for disabling too.
    assert_problem(
        await client.post("/v1/me/mfa/disable", headers=bearer(token), json={"code": next_code}),
        401,
        "invalid-mfa-code",
    )
    kinds = [e.kind for e in await events(rolled_back, tenant.id)]
    assert "recovery_codes_regenerated" in kinds


async def test_mfa_disable_with_current_code(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    token = (await login(client, made, recovery_code=(made.recovery_codes or [""])[0])).json()[
        "access_token"
    ]
    assert (
        await client.post("/v1/me/mfa/disable", headers=bearer(token), json={"code": made.code()})
    ).status_code == 204
    assert (await login(client, made)).status_code == 200
    assert "mfa_disabled" in [e.kind for e in await events(rolled_back, tenant.id)]


async def test_api_keys_cannot_use_user_only_endpoints(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    _, key = await make_api_key(rolled_back, tenant)
    assert_problem(await client.post("/v1/me/mfa/enrol", headers=bearer(key)), 403, "user-only")
    assert_problem(await client.post("/v1/auth/logout", headers=bearer(key)), 403, "user-only")


# -- TenantSession: commit before the response, rollback on error -------------------------------
def _probe_router() -> APIRouter:
    router = APIRouter()

    @router.post("/_probe/rename")
    async def rename(
        principal: Authenticated, session: TenantSession, fail: bool = False
    ) -> dict[str, Any]:
        await session.execute(text("UPDATE tenants SET name = 'renamed by probe'"))
        if fail:
            raise RuntimeError("boom after the write")
        return {"ok": True}

    @router.get("/_probe/who")
    async def who(session: TenantSession) -> dict[str, Any]:
        rows = (await session.execute(select(User.email))).scalars().all()
        return {"emails": list(rows)}

    return router


async def test_tenant_session_commits_before_the_response_and_rolls_back_on_error(
    settings: Any, committed: Database, keyring: Keyring
) -> None:
    # Real commits on separate connections: a rolled-back fixture shares one connection,
    # on which uncommitted writes would be visible and the test could not fail.
    from tradeflow.app import create_app

    app = create_app(settings, committed, keyring=keyring)
    app.include_router(_probe_router())
    tenant = await make_tenant(committed)
    _, key = await make_api_key(committed, tenant)
    seen_at_response: list[str] = []

    async def watching(scope: Any, receive: Any, send: Any) -> None:
        # When the response starts, read the row through another connection.
        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["path"].startswith("/_probe"):
                async with committed.engine.connect() as conn:
                    name = (
                        await conn.execute(
                            text("SELECT name FROM tenants WHERE id = :id"), {"id": tenant.id}
                        )
                    ).scalar_one()
                seen_at_response.append(name)
            await send(message)

        await app(scope, receive, send_wrapper)

    transport = ASGITransport(app=watching, client=("127.0.0.1", 1))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.post("/_probe/rename", headers=bearer(key))
        assert r.status_code == 200
        assert seen_at_response == ["renamed by probe"]
        async with committed.system_session() as s:
            await s.execute(
                text("UPDATE tenants SET name = 'original' WHERE id = :id"), {"id": tenant.id}
            )
            await s.commit()
        r = await client.post("/_probe/rename?fail=true", headers=bearer(key))
        assert r.status_code == 500
        assert seen_at_response[-1] == "original"


async def test_tenant_session_is_confined_by_rls(
    client: AsyncClient, rolled_back: Database, app: Any
) -> None:
    app.include_router(_probe_router())
    a, b = await make_tenant(rolled_back), await make_tenant(rolled_back)
    ua = await make_user(rolled_back, a, email="a@example.com")
    await make_user(rolled_back, b, email="b@example.com")
    token = await access_token(client, ua)
    # The probe selects users without any filter: RLS alone keeps tenant B out.
    r = await client.get("/_probe/who", headers=bearer(token))
    assert r.json() == {"emails": ["a@example.com"]}


async def test_enabling_a_user_lifts_a_lockout(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant, role="owner")
    staff = await make_user(rolled_back, tenant, role="sales")
    token = await access_token(client, owner)
    for _ in range(5):
        await client.post("/v1/auth/login", json={"email": staff.email, "password": "w" * 14})
    assert_problem(await login(client, staff), 401, "invalid-credentials")
    r = await client.patch(f"/v1/users/{staff.id}", headers=bearer(token), json={"active": True})
    assert r.status_code == 200
    assert r.json()["locked_until"] is None
    assert (await login(client, staff)).status_code == 200


async def test_etag_and_if_match_on_user_and_tenant_updates(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant)
    staff = await make_user(rolled_back, tenant, role="sales")
    h = bearer(await access_token(client, owner))
    got = await client.get(f"/v1/users/{staff.id}", headers=h)
    tag = got.headers["etag"]
    assert tag == '"1"'
    # Signing in does not change the ETag: only administrative changes do.
    await login(client, staff)
    assert (await client.get(f"/v1/users/{staff.id}", headers=h)).headers["etag"] == tag
    r = await client.patch(
        f"/v1/users/{staff.id}", headers={**h, "If-Match": tag}, json={"role": "finance"}
    )
    assert r.status_code == 200
    assert r.headers["etag"] == '"2"'
    stale = await client.patch(
        f"/v1/users/{staff.id}", headers={**h, "If-Match": tag}, json={"role": "auditor"}
    )
    assert_problem(stale, 412, "version-mismatch")
    t = await client.get("/v1/tenant", headers=h)
    r = await client.patch(
        "/v1/tenant", headers={**h, "If-Match": t.headers["etag"]}, json={"name": "Renamed"}
    )
    assert r.status_code == 200
    again = await client.patch(
        "/v1/tenant", headers={**h, "If-Match": t.headers["etag"]}, json={"name": "Again"}
    )
    assert_problem(again, 412, "version-mismatch")
