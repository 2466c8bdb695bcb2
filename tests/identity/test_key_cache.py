"""The in-process cache of verified API keys: hits skip the database, revocation and expiry
take effect once the TTL has passed."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from identity_factories import bearer, install_key_cache, make_api_key, make_tenant
from sqlalchemy import text
from test_login import assert_problem

from tradeflow.db import Database
from tradeflow.identity.key_cache import TTL_SECONDS


async def _set(db: Database, sql: str, key_id: Any) -> None:
    async with db.system_session() as s:
        await s.execute(text(sql), {"id": key_id})
        await s.commit()


async def test_revoked_key_is_served_from_cache_until_ttl_then_refused(
    client: AsyncClient, app: Any, rolled_back: Database
) -> None:
    clock = install_key_cache(app)
    tenant = await make_tenant(rolled_back)
    key_id, key = await make_api_key(rolled_back, tenant)
    assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200
    await _set(rolled_back, "UPDATE api_keys SET revoked_at = now() WHERE id = :id", key_id)
    # Within the TTL the verified key is not looked up again.
    clock.advance(TTL_SECONDS - 0.5)
    assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200
    clock.advance(0.5)
    body = assert_problem(await client.get("/v1/me", headers=bearer(key)), 401, "invalid-token")
    assert "revoked" in body["detail"]
    # A refused key is not remembered: un-revoking it is seen by the next request.
    await _set(rolled_back, "UPDATE api_keys SET revoked_at = NULL WHERE id = :id", key_id)
    assert (await client.get("/v1/me", headers=bearer(key))).status_code == 200


async def test_expired_and_deleted_keys_refused_after_ttl(
    client: AsyncClient, app: Any, rolled_back: Database
) -> None:
    clock = install_key_cache(app)
    tenant = await make_tenant(rolled_back)
    key_id, key = await make_api_key(rolled_back, tenant)
    other_id, other = await make_api_key(rolled_back, tenant)
    for k in (key, other):
        assert (await client.get("/v1/me", headers=bearer(k))).status_code == 200
    await _set(
        rolled_back,
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id",
        key_id,
    )
    await _set(rolled_back, "DELETE FROM api_keys WHERE id = :id", other_id)
    clock.advance(TTL_SECONDS)
    body = assert_problem(await client.get("/v1/me", headers=bearer(key)), 401, "invalid-token")
    assert "expired" in body["detail"]
    assert_problem(await client.get("/v1/me", headers=bearer(other)), 401, "invalid-token")


async def test_cached_key_keeps_its_scopes_and_tenant(
    client: AsyncClient, app: Any, rolled_back: Database
) -> None:
    install_key_cache(app)
    tenant = await make_tenant(rolled_back)
    _, key = await make_api_key(rolled_back, tenant, scopes=frozenset({"orders:read"}))
    for _ in range(2):  # a miss, then a hit
        me = await client.get("/v1/me", headers=bearer(key))
        assert me.status_code == 200, me.text
        assert me.json()["tenant_id"] == str(tenant.id)
        assert me.json()["scopes"] == ["orders:read"]
        users = await client.get("/v1/users", headers=bearer(key))
        assert_problem(users, 403, "insufficient-scope")
    # A key differing in its secret is refused even while the real one is cached.
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert_problem(await client.get("/v1/me", headers=bearer(tampered)), 401, "invalid-token")
