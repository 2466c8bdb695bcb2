"""Tenant-isolation factories for identity's path parameters (see tests/test_tenant_isolation.py).

Each factory creates tenant B's object and returns the path parameters naming it.
"""

from __future__ import annotations

from typing import Any

from identity_factories import make_api_key, make_user


async def _user(ctx: Any) -> dict[str, str]:
    made = await make_user(ctx.db, ctx.tenant_b, role="sales", with_totp=True, keyring=ctx.keyring)
    ctx.remember("identity.user", made)
    return {"user_id": str(made.id)}


async def _api_key(ctx: Any) -> dict[str, str]:
    key_id, token = await make_api_key(ctx.db, ctx.tenant_b)
    ctx.remember("identity.api_key", token)
    return {"key_id": str(key_id)}


# Keyed by path parameter name, or by path template when a name is ambiguous.
FACTORIES = {
    "user_id": _user,
    "key_id": _api_key,
}

# Request bodies for operations whose body a schema-derived example would not satisfy.
BODIES: dict[str, Any] = {}


async def check_untouched(ctx: Any, client: Any) -> None:
    """After the walk: B's objects still work exactly as before."""
    from identity_factories import bearer, login

    token = ctx.recalled("identity.api_key")
    if token:
        r = await client.get("/v1/me", headers=bearer(token))
        assert r.status_code == 200, f"B's API key was changed by A: {r.text}"
    made = ctx.recalled("identity.user")
    if made:
        r = await login(client, made)
        assert r.status_code == 401, r.text
        assert r.json()["type"].endswith("mfa-required"), "B's user lost MFA or changed state"
