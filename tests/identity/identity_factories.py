"""Plain factory functions for identity tests (tenants, users with or without TOTP, API keys)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pyotp
from httpx import AsyncClient, Response

from tradeflow.db import Database
from tradeflow.identity import mfa, service, totp
from tradeflow.identity.models import Tenant, User
from tradeflow.identity.principal import ALL_SCOPES
from tradeflow.identity.repository import IdentityRepository
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

PASSWORD = "correct horse battery staple"


@dataclass
class MadeUser:
    user: User
    tenant: Tenant
    email: str
    password: str
    totp_secret: str | None = None
    recovery_codes: list[str] | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    def code(self, offset_steps: int = 0) -> str:
        assert self.totp_secret
        return totp.code_at(self.totp_secret, totp.step_of(utcnow()) + offset_steps)


async def make_tenant(
    db: Database, *, name: str | None = None, mfa_required: bool = False
) -> Tenant:
    suffix = uuid.uuid4().hex[:8]
    async with db.system_session() as s:
        tenant = await service.create_tenant(
            s,
            name=name or f"Seller {suffix}",
            slug=f"seller-{suffix}",
            mfa_required_for_staff=mfa_required,
        )
        await s.commit()
    return tenant


async def make_user(
    db: Database,
    tenant: Tenant,
    *,
    role: str = "owner",
    email: str | None = None,
    password: str = PASSWORD,
    with_totp: bool = False,
    keyring: Keyring | None = None,
    active: bool = True,
) -> MadeUser:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    secret = None
    codes = None
    async with db.system_session() as s:
        user = await service.create_user(s, tenant.id, email=email, password=password, role=role)
        user.active = active
        if with_totp:
            assert keyring is not None
            repo = IdentityRepository(s, tenant.id)
            enrolment = await mfa.enrol(repo, keyring, user)
            secret = enrolment.secret
            # Confirm with the previous step's code, so the current step stays usable in tests.
            previous = totp.code_at(secret, totp.step_of(utcnow()) - 1)
            codes = await mfa.confirm(repo, keyring, user, previous, actor=None)
        await s.commit()
    return MadeUser(user, tenant, email, password, secret, codes)


async def make_api_key(
    db: Database, tenant: Tenant, *, scopes: frozenset[str] = ALL_SCOPES, **kw: Any
) -> tuple[uuid.UUID, str]:
    async with db.system_session() as s:
        created = await service.create_api_key(
            IdentityRepository(s, tenant.id), name="test key", scopes=scopes, actor=None, **kw
        )
        await s.commit()
    return created.key.id, created.token


async def login(client: AsyncClient, made: MadeUser, **extra: Any) -> Response:
    body: dict[str, Any] = {"email": made.email, "password": made.password, **extra}
    return await client.post("/v1/auth/login", json=body)


async def access_token(client: AsyncClient, made: MadeUser) -> str:
    extra = {"totp_code": made.code()} if made.totp_secret else {}
    r = await login(client, made, **extra)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def totp_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()


class ManualClock:
    """A monotonic clock the test moves by hand, for the API key cache's TTL."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def install_key_cache(app: Any) -> ManualClock:
    """Give the app a fresh API key cache on a hand-moved clock; returns the clock."""
    from tradeflow.identity.key_cache import ApiKeyCache

    clock = ManualClock()
    app.state.api_key_cache = ApiKeyCache(clock=clock)
    return clock
