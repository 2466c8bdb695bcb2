"""Request authentication and authorisation, shared by every context's endpoints.

    @router.get("/things/{id}")
    async def get_thing(
        id: uuid.UUID,
        principal: Annotated[Principal, require_scopes("things:read")],
        session: TenantSession,
    ) -> ThingOut: ...

* `current_principal` reads `Authorization: Bearer <token>`: an API key
  (`tf_live_…`) or an access token (JWT). It is the only code that reads
  credentials across tenants (`Database.system_session`). Verified API keys are
  remembered for a few seconds (`identity.key_cache`), so most key requests skip it.
* `require_scopes(...)` turns a missing scope into a 403 naming it.
* `TenantSession` is the request's unit of work: a session confined to the
  caller's tenant by row-level security, committed after the endpoint returns
  and before the response is sent, rolled back on any error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.identity.errors import InvalidToken, MissingScopes, UserOnly
from tradeflow.identity.key_cache import ApiKeyCache, CachedKey
from tradeflow.identity.principal import Principal, scopes_for_role
from tradeflow.identity.repository import CredentialRepository
from tradeflow.identity.tokens import (
    TokenError,
    api_key_prefix,
    decode_access_token,
    is_api_key,
)
from tradeflow.kit.time import utcnow
from tradeflow.observability.logging import bind_principal

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from `POST /v1/auth/login`, or an API key (`tf_live_…`).",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

ENROL_ONLY = "mfa_enrol"


def api_key_cache(request: Request) -> ApiKeyCache:
    """The process's cache of verified API keys (created on first use)."""
    state = request.app.state
    cache = getattr(state, "api_key_cache", None)
    if not isinstance(cache, ApiKeyCache):
        cache = state.api_key_cache = ApiKeyCache()
    return cache


async def _resolve_api_key(request: Request, token: str) -> Principal:
    presented = hashlib.sha256(token.encode()).digest()
    cache = api_key_cache(request)
    hit = cache.get(presented)
    if hit is not None:
        # Revocation reaches a cached key within the cache's TTL; its own expiry is exact.
        if hit.expires_at is not None and hit.expires_at <= utcnow():
            cache.forget(presented)
            raise InvalidToken("This API key has expired.")
        return hit.principal
    prefix = api_key_prefix(token)
    if prefix is None:
        raise InvalidToken("Malformed API key.")
    db = request.app.state.db
    async with db.system_session() as session:
        creds = CredentialRepository(session)
        key = await creds.api_key_by_prefix(prefix)
        # Compare even when no key matched, so timing does not tell a valid prefix apart.
        stored = key.key_hash if key is not None else b"\0" * 32
        if not hmac.compare_digest(stored, presented) or key is None:
            raise InvalidToken("Unknown API key.")
        now = utcnow()
        if key.revoked_at is not None:
            raise InvalidToken("This API key is revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidToken("This API key has expired.")
        # `last_used_at` is written at most once a minute per key (and only on a cache miss).
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
            await creds.touch_api_key(key.id, now)
            await session.commit()
    principal = Principal(
        kind="api_key",
        id=key.id,
        tenant_id=key.tenant_id,
        scopes=frozenset(key.scopes),
        user_id=key.created_by,
    )
    cache.put(presented, CachedKey(principal, key.expires_at))
    return principal


async def _resolve_jwt(request: Request, token: str, *, allow_enrol: bool) -> Principal:
    settings: Settings = request.app.state.settings
    try:
        claims = decode_access_token(request.app.state.keyring, token, issuer=settings.jwt_issuer)
    except TokenError as exc:
        raise InvalidToken("The access token is invalid or expired.") from exc
    if claims.token_type == ENROL_ONLY and not allow_enrol:
        raise InvalidToken("An MFA enrolment token only enrols MFA; sign in again after that.")
    db = request.app.state.db
    async with db.system_session() as session:
        creds = CredentialRepository(session)
        if claims.session_id is not None:
            found = await creds.session_and_user(
                claims.session_id, claims.user_id, claims.tenant_id
            )
            if found is None:
                raise InvalidToken("The session of this token does not exist.")
            auth_session, user = found
            if auth_session.revoked_at is not None or auth_session.expires_at <= utcnow():
                raise InvalidToken("The session of this token has ended; sign in again.")
        else:
            maybe_user = await creds.user(claims.user_id, claims.tenant_id)
            if maybe_user is None or claims.token_type != ENROL_ONLY:
                raise InvalidToken("The access token is invalid.")
            user = maybe_user
    if not user.active:
        raise InvalidToken("This account is disabled.")
    enrol_only = claims.token_type == ENROL_ONLY
    return Principal(
        kind="user",
        id=user.id,
        tenant_id=user.tenant_id,
        scopes=frozenset() if enrol_only else scopes_for_role(user.role),
        user_id=user.id,
        role=user.role,
        session_id=claims.session_id,
        customer_id=user.customer_id,
        extra={"token_type": claims.token_type},
    )


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, allow_enrol: bool
) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        if not allow_enrol and cached.extra.get("token_type") == ENROL_ONLY:
            raise InvalidToken("An MFA enrolment token only enrols MFA.")
        return cached
    if credentials is None or not credentials.credentials:
        raise InvalidToken("Send `Authorization: Bearer <access token or API key>`.")
    token = credentials.credentials.strip()
    if is_api_key(token):
        principal = await _resolve_api_key(request, token)
    else:
        principal = await _resolve_jwt(request, token, allow_enrol=allow_enrol)
    request.state.principal = principal
    bind_principal(request.state, tenant_id=principal.tenant_id, principal_id=principal.id)
    settings: Settings = request.app.state.settings
    await request.app.state.ratelimiter.check(
        request,
        policy="default",
        limit=settings.ratelimit_default,
        key=f"{principal.kind}:{principal.id}",
    )
    return principal


async def current_principal(request: Request, credentials: Bearer) -> Principal:
    """The authenticated caller (API key or user access token); 401 problem otherwise."""
    return await _authenticate(request, credentials, allow_enrol=False)


async def current_principal_or_enrolment(request: Request, credentials: Bearer) -> Principal:
    """Like `current_principal`, but also accepts the MFA-enrolment token from login."""
    return await _authenticate(request, credentials, allow_enrol=True)


Authenticated = Annotated[Principal, Depends(current_principal)]
EnrollingUser = Annotated[Principal, Depends(current_principal_or_enrolment)]


def require_scopes(*scopes: str) -> Any:
    """A dependency returning the principal if it holds every scope, else 403 naming the missing."""

    async def _check(principal: Authenticated) -> Principal:
        missing = sorted(s for s in scopes if s not in principal.scopes)
        if missing:
            raise MissingScopes(
                f"This needs the scope(s) {', '.join(missing)}, which the caller does not hold.",
                missing=missing,
            )
        return principal

    return Depends(_check)


async def _require_user(principal: Authenticated) -> Principal:
    if principal.kind != "user":
        raise UserOnly("Only a signed-in user can do this, not an API key.")
    return principal


SignedInUser = Annotated[Principal, Depends(_require_user)]


async def _tenant_session(
    request: Request, principal: Authenticated
) -> AsyncIterator[AsyncSession]:
    # Runs with scope="function": the commit below happens when the endpoint returns,
    # before FastAPI sends the response, so a 2xx means the change is durable.
    async with request.app.state.db.tenant_session(principal.tenant_id) as session:
        yield session
        await session.commit()


TenantSession = Annotated[AsyncSession, Depends(_tenant_session, scope="function")]


async def _enrolling_tenant_session(
    request: Request, principal: EnrollingUser
) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.tenant_session(principal.tenant_id) as session:
        yield session
        await session.commit()


EnrollingTenantSession = Annotated[
    AsyncSession, Depends(_enrolling_tenant_session, scope="function")
]
