"""Login paths over HTTP: password, TOTP, recovery codes, lockout, tenants, problem+json."""

from __future__ import annotations

import time

from httpx import AsyncClient
from identity_factories import PASSWORD, access_token, bearer, login, make_tenant, make_user
from sqlalchemy import select

from tradeflow.db import Database
from tradeflow.identity.models import SecurityEvent, User
from tradeflow.identity.sessions import LoginPolicy
from tradeflow.kit.keyring import Keyring


def assert_problem(r, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/" + slug), body
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


async def events(db: Database, tenant_id, kind: str | None = None) -> list[SecurityEvent]:  # type: ignore[no-untyped-def]
    async with db.system_session() as s:
        stmt = select(SecurityEvent).where(SecurityEvent.tenant_id == tenant_id)
        if kind:
            stmt = stmt.where(SecurityEvent.kind == kind)
        return list((await s.execute(stmt.order_by(SecurityEvent.id))).scalars())


async def test_password_login_returns_tokens_and_me_works(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, role="sales")
    r = await login(client, made)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 800 <= body["expires_in"] <= 1000
    assert r.headers["cache-control"] == "no-store"
    me = await client.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    data = me.json()
    assert data["kind"] == "user"
    assert data["id"] == str(made.id)
    assert data["tenant_id"] == str(tenant.id)
    assert data["email"] == made.email
    assert data["role"] == "sales"
    assert "orders:write" in data["scopes"]
    assert "users:write" not in data["scopes"]
    assert [e.kind for e in await events(rolled_back, tenant.id, "login_succeeded")] == [
        "login_succeeded"
    ]


async def test_email_is_case_insensitive(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, email="Mixed.Case@Example.com")
    r = await client.post(
        "/v1/auth/login", json={"email": "MIXED.case@example.COM", "password": made.password}
    )
    assert r.status_code == 200, r.text


async def test_wrong_password_and_unknown_email_look_the_same(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant)
    wrong = await client.post("/v1/auth/login", json={"email": made.email, "password": "x" * 20})
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 20}
    )
    a = assert_problem(wrong, 401, "invalid-credentials")
    b = assert_problem(unknown, 401, "invalid-credentials")
    assert a["detail"] == b["detail"]
    failed = await events(rolled_back, tenant.id, "login_failed")
    assert [e.details["reason"] for e in failed] == ["password"]


async def test_mfa_required_then_code_then_replay_rejected(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    assert_problem(await login(client, made), 401, "mfa-required")
    assert_problem(await login(client, made, totp_code="000000"), 401, "invalid-mfa-code")
    code = made.code()
    ok = await login(client, made, totp_code=code)
    assert ok.status_code == 200, ok.text
    replay = await login(client, made, totp_code=code)
    body = assert_problem(replay, 401, "invalid-mfa-code")
    assert "already used" in body["detail"]
    # An older code (an earlier step) is a replay too, even within the skew window.
    assert_problem(await login(client, made, totp_code=made.code(-1)), 401, "invalid-mfa-code")
    # The next step's code still works (one step of skew).
    assert (await login(client, made, totp_code=made.code(+1))).status_code == 200


async def test_recovery_code_works_once(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    assert made.recovery_codes
    assert len(made.recovery_codes) == 10
    code = made.recovery_codes[3]
    first = await login(client, made, recovery_code=code.upper())
    assert first.status_code == 200, first.text
    assert_problem(await login(client, made, recovery_code=code), 401, "invalid-mfa-code")
    used = await events(rolled_back, tenant.id, "recovery_code_used")
    assert len(used) == 1
    assert used[0].details["remaining"] == 9


async def test_lockout_after_repeated_failures(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant)
    for _ in range(5):
        r = await client.post("/v1/auth/login", json={"email": made.email, "password": "w" * 14})
        assert_problem(r, 401, "invalid-credentials")
    # Locked now: even the right password is refused, with the same answer.
    assert_problem(await login(client, made), 401, "invalid-credentials")
    async with rolled_back.system_session() as s:
        user = (await s.execute(select(User).where(User.id == made.id))).scalar_one()
        assert user.locked_until is not None
        # The lockout ends: the right password works again and resets the counter.
        user.locked_until = user.locked_until.replace(year=2000)
        await s.commit()
    assert (await login(client, made)).status_code == 200
    kinds = [e.kind for e in await events(rolled_back, tenant.id)]
    assert kinds.count("lockout") == 1
    assert kinds.count("login_failed") == 6
    async with rolled_back.system_session() as s:
        user = (await s.execute(select(User).where(User.id == made.id))).scalar_one()
        assert user.failed_logins == 0


async def test_wrong_mfa_codes_count_towards_lockout(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    for _ in range(5):
        assert_problem(await login(client, made, totp_code="123456"), 401, "invalid-mfa-code")
    assert_problem(await login(client, made, totp_code=made.code()), 401, "invalid-credentials")


async def test_ip_lockout_through_the_limiter(
    app, client: AsyncClient, rolled_back: Database
) -> None:  # type: ignore[no-untyped-def]
    app.state.login_policy = LoginPolicy(ip_max_failures=3, delay_after=1000)
    for i in range(3):
        r = await client.post(
            "/v1/auth/login", json={"email": f"n{i}@example.com", "password": "p" * 12}
        )
        assert_problem(r, 401, "invalid-credentials")
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant)
    r = await login(client, made)
    body = assert_problem(r, 429, "rate-limited")
    assert int(r.headers["retry-after"]) > 0
    assert "address" in body["detail"]


async def test_progressive_delay_grows_with_failures(app, client: AsyncClient) -> None:  # type: ignore[no-untyped-def]
    app.state.login_policy = LoginPolicy(
        delay_after=1, delay_base_seconds=0.5, delay_max_seconds=1.0
    )
    # Warm the cold path (connections, statement compilation) on another e-mail first.
    await client.post("/v1/auth/login", json={"email": "warm@example.com", "password": "p" * 12})
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        r = await client.post(
            "/v1/auth/login", json={"email": "d@example.com", "password": "p" * 12}
        )
        timings.append(time.perf_counter() - started)
        assert r.status_code == 401
    # failure 1: no delay; failure 2: 0.5 s; failure 3: 1 s (capped). Lower bounds are
    # exact (a sleep never ends early); the first answer is compared, not timed, so a
    # loaded machine does not make the test flaky.
    assert timings[1] >= 0.5
    assert timings[2] >= 1.0
    assert timings[2] - timings[0] >= 0.6


async def test_disabled_user_cannot_log_in(client: AsyncClient, rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant, active=False)
    assert_problem(await login(client, made), 401, "account-disabled")


async def test_same_email_in_two_tenants_needs_tenant(
    client: AsyncClient, rolled_back: Database
) -> None:
    t1, t2 = await make_tenant(rolled_back), await make_tenant(rolled_back)
    a = await make_user(rolled_back, t1, email="shared@example.com")
    await make_user(rolled_back, t2, email="shared@example.com", password="another long passphrase")
    assert_problem(await login(client, a), 422, "tenant-required")
    by_slug = await login(client, a, tenant=t1.slug)
    assert by_slug.status_code == 200, by_slug.text
    by_id = await client.post(
        "/v1/auth/login",
        json={
            "email": "shared@example.com",
            "password": "another long passphrase",
            "tenant": str(t2.id),
        },
    )
    assert by_id.status_code == 200
    me = await client.get("/v1/me", headers=bearer(by_id.json()["access_token"]))
    assert me.json()["tenant_id"] == str(t2.id)
    wrong_tenant = await login(client, a, tenant=t2.slug)
    assert_problem(wrong_tenant, 401, "invalid-credentials")


async def test_tenant_policy_requires_mfa_and_enrolment_flow(
    client: AsyncClient, rolled_back: Database
) -> None:
    tenant = await make_tenant(rolled_back, mfa_required=True)
    made = await make_user(rolled_back, tenant, role="admin")
    body = assert_problem(await login(client, made), 401, "mfa-enrolment-required")
    enrol_token = body["enrolment_token"]
    # The enrolment token opens MFA enrolment only.
    assert_problem(await client.get("/v1/me", headers=bearer(enrol_token)), 401, "invalid-token")
    assert_problem(await client.get("/v1/users", headers=bearer(enrol_token)), 401, "invalid-token")
    enrol = await client.post("/v1/me/mfa/enrol", headers=bearer(enrol_token))
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    png = await client.get("/v1/me/mfa/qr.png", headers=bearer(enrol_token))
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    from tradeflow.identity import totp
    from tradeflow.kit.time import utcnow

    step = totp.step_of(utcnow())
    confirm = await client.post(
        "/v1/me/mfa/confirm",
        headers=bearer(enrol_token),
        json={"code": totp.code_at(secret, step - 1)},
    )
    assert confirm.status_code == 200, confirm.text
    assert len(confirm.json()["recovery_codes"]) == 10
    # Now the policy is met: password alone is not enough, password + code is.
    assert_problem(await login(client, made), 401, "mfa-required")
    ok = await login(client, made, totp_code=totp.code_at(secret, step))
    assert ok.status_code == 200, ok.text


async def test_policy_blocks_login_without_mfa_and_turning_it_on_is_an_event(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    tenant = await make_tenant(rolled_back)
    owner = await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
    staff = await make_user(rolled_back, tenant, role="sales")
    token = await access_token(client, owner)
    r = await client.patch(
        "/v1/tenant", headers=bearer(token), json={"mfa_required_for_staff": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["mfa_required_for_staff"] is True
    assert_problem(await login(client, staff), 401, "mfa-enrolment-required")
    assert len(await events(rolled_back, tenant.id, "tenant_policy_changed")) == 1


async def test_password_rehashed_when_parameters_change(
    client: AsyncClient, rolled_back: Database
) -> None:
    from tradeflow.identity import passwords

    tenant = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant)
    old_hash = made.user.password_hash
    old = passwords.hasher()
    passwords.configure_hasher(time_cost=2, memory_cost=2048, parallelism=1)
    try:
        assert (await login(client, made)).status_code == 200
    finally:
        passwords.configure_hasher(
            time_cost=old.time_cost, memory_cost=old.memory_cost, parallelism=old.parallelism
        )
    async with rolled_back.system_session() as s:
        new_hash = (
            await s.execute(select(User.password_hash).where(User.id == made.id))
        ).scalar_one()
    assert new_hash != old_hash
    assert "$argon2id$" in new_hash
    assert "m=2048,t=2,p=1" in new_hash


async def test_login_validation_error_is_problem(client: AsyncClient) -> None:
    r = await client.post("/v1/auth/login", json={"email": "x@example.com"})
    assert_problem(r, 422, "validation-error")


async def test_auth_rate_limit_per_email(settings, rolled_back: Database, keyring: Keyring) -> None:  # type: ignore[no-untyped-def]
    from httpx import ASGITransport

    from tradeflow.app import create_app

    app = create_app(
        settings.model_copy(update={"ratelimit_auth": "3/minute"}), rolled_back, keyring=keyring
    )
    transport = ASGITransport(app=app, client=("127.0.0.9", 1))
    async with AsyncClient(transport=transport, base_url="http://t") as c:
        codes = [
            (
                await c.post(
                    "/v1/auth/login", json={"email": "r@example.com", "password": PASSWORD}
                )
            ).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        r = await c.post("/v1/auth/login", json={"email": "r@example.com", "password": PASSWORD})
        assert "retry-after" in r.headers
        assert "ratelimit" in r.headers
