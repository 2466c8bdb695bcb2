"""Access tokens (expiry, kid, key rotation), refresh rotation and reuse, logout."""

from __future__ import annotations

import base64
from datetime import timedelta

import jwt
from httpx import AsyncClient
from identity_factories import bearer, login, make_tenant, make_user
from sqlalchemy import select
from test_login import assert_problem, events

from tradeflow.db import Database
from tradeflow.identity.models import AuthSession
from tradeflow.identity.tokens import JWT_PURPOSE, decode_access_token, mint_access_token
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow


async def _tokens(client: AsyncClient, db: Database) -> tuple[dict, object]:  # type: ignore[type-arg]
    tenant = await make_tenant(db)
    made = await make_user(db, tenant, role="admin")
    r = await login(client, made)
    assert r.status_code == 200, r.text
    return r.json(), made


async def test_access_token_has_kid_issuer_and_expiry(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    body, made = await _tokens(client, rolled_back)
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["kid"] == keyring.active
    assert header["alg"] == "HS256"
    claims = decode_access_token(keyring, token, issuer="tradeflow")
    assert claims.user_id == made.id  # type: ignore[attr-defined]
    assert 0 < (claims.expires_at - utcnow()).total_seconds() <= 900


async def test_expired_forged_and_foreign_tokens_are_401(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    body, _made = await _tokens(client, rolled_back)
    claims = decode_access_token(keyring, body["access_token"], issuer="tradeflow")
    expired = mint_access_token(
        keyring,
        user_id=claims.user_id,
        tenant_id=claims.tenant_id,
        session_id=claims.session_id,
        ttl=timedelta(minutes=15),
        issuer="tradeflow",
        now=utcnow() - timedelta(minutes=30),
    )
    assert_problem(await client.get("/v1/me", headers=bearer(expired)), 401, "invalid-token")
    other_issuer = mint_access_token(
        keyring,
        user_id=claims.user_id,
        tenant_id=claims.tenant_id,
        session_id=claims.session_id,
        ttl=timedelta(minutes=15),
        issuer="someone-else",
    )
    assert_problem(await client.get("/v1/me", headers=bearer(other_issuer)), 401, "invalid-token")
    forged = jwt.encode(
        {
            "iss": "tradeflow",
            "sub": str(claims.user_id),
            "tid": str(claims.tenant_id),
            "sid": str(claims.session_id),
            "typ": "access",
            "exp": 4102444800,
        },
        b"\x00" * 32,
        algorithm="HS256",
        headers={"kid": keyring.active},
    )
    assert_problem(await client.get("/v1/me", headers=bearer(forged)), 401, "invalid-token")
    unknown_kid = jwt.encode(
        {"iss": "tradeflow"}, b"k" * 32, algorithm="HS256", headers={"kid": "zz9"}
    )
    assert_problem(await client.get("/v1/me", headers=bearer(unknown_kid)), 401, "invalid-token")
    none_alg = jwt.encode(
        {"iss": "tradeflow", "sub": str(claims.user_id)},
        None,
        algorithm="none",
        headers={"kid": keyring.active},
    )
    assert_problem(await client.get("/v1/me", headers=bearer(none_alg)), 401, "invalid-token")
    r = await client.get("/v1/me")
    assert_problem(r, 401, "invalid-token")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_signing_key_rotation_keeps_old_tokens_valid(
    app: object, client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    body, made = await _tokens(client, rolled_back)
    old_token = body["access_token"]
    # A ring with a new active key that still holds the old one (what `keys rotate` produces).
    rotated = Keyring(keys={"t2": b"\x09" * 32, **keyring.keys}, active="t2")
    app.state.keyring = rotated  # type: ignore[attr-defined]
    try:
        assert (await client.get("/v1/me", headers=bearer(old_token))).status_code == 200
        r = await login(client, made)
        new_token = r.json()["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == "t2"
        assert (await client.get("/v1/me", headers=bearer(new_token))).status_code == 200
    finally:
        app.state.keyring = keyring  # type: ignore[attr-defined]
    # A process without the new key cannot verify the new token: the kid matters.
    assert_problem(await client.get("/v1/me", headers=bearer(new_token)), 401, "invalid-token")


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: AsyncClient, rolled_back: Database
) -> None:
    body, made = await _tokens(client, rolled_back)
    first_refresh = body["refresh_token"]
    r1 = await client.post("/v1/auth/refresh", json={"refresh_token": first_refresh})
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != first_refresh
    assert (await client.get("/v1/me", headers=bearer(second["access_token"]))).status_code == 200
    # The first refresh token is spent; presenting it again revokes the whole session.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": first_refresh})
    assert_problem(reuse, 401, "invalid-token")
    assert_problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}),
        401,
        "invalid-token",
    )
    assert_problem(
        await client.get("/v1/me", headers=bearer(second["access_token"])), 401, "invalid-token"
    )
    assert_problem(
        await client.get("/v1/me", headers=bearer(body["access_token"])), 401, "invalid-token"
    )
    assert len(await events(rolled_back, made.tenant.id, "refresh_reuse")) == 1  # type: ignore[attr-defined]
    # Other sessions of the same user are untouched.
    assert (await login(client, made)).status_code == 200  # type: ignore[arg-type]


async def test_unknown_refresh_token(client: AsyncClient) -> None:
    assert_problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": "tfr_nope"}),
        401,
        "invalid-token",
    )


async def test_each_login_is_a_new_session_and_logout_ends_only_it(
    client: AsyncClient, rolled_back: Database
) -> None:
    body, made = await _tokens(client, rolled_back)
    other = (await login(client, made)).json()  # type: ignore[arg-type]
    me1 = (await client.get("/v1/me", headers=bearer(body["access_token"]))).json()
    me2 = (await client.get("/v1/me", headers=bearer(other["access_token"]))).json()
    assert me1["session_id"] != me2["session_id"]
    r = await client.post("/v1/auth/logout", headers=bearer(body["access_token"]))
    assert r.status_code == 204
    assert_problem(
        await client.get("/v1/me", headers=bearer(body["access_token"])), 401, "invalid-token"
    )
    assert_problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}),
        401,
        "invalid-token",
    )
    assert (await client.get("/v1/me", headers=bearer(other["access_token"]))).status_code == 200
    # Logging out by refresh token (e.g. after the access token expired).
    r = await client.post("/v1/auth/logout", json={"refresh_token": other["refresh_token"]})
    assert r.status_code == 204
    assert_problem(
        await client.get("/v1/me", headers=bearer(other["access_token"])), 401, "invalid-token"
    )
    async with rolled_back.system_session() as s:
        reasons = (
            (
                await s.execute(
                    select(AuthSession.revoked_reason).where(AuthSession.user_id == made.id)
                )
            )
            .scalars()
            .all()
        )  # type: ignore[attr-defined]
    assert sorted(r for r in reasons if r) == ["logout", "logout"]


async def test_disabling_a_user_ends_their_sessions(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant, role="owner")
    staff = await make_user(rolled_back, tenant, role="sales")
    owner_token = (await login(client, owner)).json()["access_token"]
    staff_tokens = (await login(client, staff)).json()
    r = await client.patch(
        f"/v1/users/{staff.id}", headers=bearer(owner_token), json={"active": False}
    )
    assert r.status_code == 200, r.text
    assert_problem(
        await client.get("/v1/me", headers=bearer(staff_tokens["access_token"])),
        401,
        "invalid-token",
    )
    assert_problem(
        await client.post(
            "/v1/auth/refresh", json={"refresh_token": staff_tokens["refresh_token"]}
        ),
        401,
        "invalid-token",
    )


def test_derived_signing_key_differs_per_master_key(keyring: Keyring) -> None:
    other = Keyring(keys={"x1": base64.b64decode(base64.b64encode(b"\x01" * 32))}, active="x1")
    assert keyring.derive(keyring.active, JWT_PURPOSE) != other.derive("x1", JWT_PURPOSE)


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
    settings: object, committed: Database, keyring: Keyring
) -> None:
    """Two racing refreshes of one token: one wins, the other is a reuse (separate connections)."""
    import asyncio

    from httpx import ASGITransport

    from tradeflow.app import create_app

    app = create_app(settings, committed, keyring=keyring)  # type: ignore[arg-type]
    transport = ASGITransport(app=app, client=("127.0.0.1", 7))
    async with AsyncClient(transport=transport, base_url="http://t") as c:
        tenant = await make_tenant(committed)
        made = await make_user(committed, tenant)
        refresh = (await login(c, made)).json()["refresh_token"]
        results = await asyncio.gather(
            *(c.post("/v1/auth/refresh", json={"refresh_token": refresh}) for _ in range(2))
        )
    assert sorted(r.status_code for r in results) == [200, 401]
    # The loser's reuse revoked the family, so even the winner's new tokens are dead.
    winner = next(r for r in results if r.status_code == 200).json()
    async with AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v1/auth/refresh", json={"refresh_token": winner["refresh_token"]})
    assert r.status_code == 401
