"""`/v1/users`, `/v1/api-keys`, `/v1/security-events`, `/v1/tenant`: managing a tenant's access.

Only owner and admin hold `users:write` and `api_keys:write`; auditor reads.
Objects of another tenant are 404, never 403, so their existence does not leak.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from tradeflow.identity import service
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.identity.repository import IdentityRepository
from tradeflow.identity.schemas import (
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyOut,
    SecurityEventOut,
    TenantOut,
    TenantPatchIn,
    UserCreateIn,
    UserOut,
    UserPatchIn,
)
from tradeflow.kit.etag import IfMatch, etag
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.kit.ratelimit import client_ip

router = APIRouter()

UsersRead = Annotated[Principal, require_scopes("users:read")]
UsersWrite = Annotated[Principal, require_scopes("users:write")]
KeysRead = Annotated[Principal, require_scopes("api_keys:read")]
KeysWrite = Annotated[Principal, require_scopes("api_keys:write")]
EventsRead = Annotated[Principal, require_scopes("security_events:read")]
TenantRead = Annotated[Principal, require_scopes("tenant:read")]
TenantWrite = Annotated[Principal, require_scopes("tenant:write")]


# -- users ----------------------------------------------------------------------------------------
@router.get(
    "/users", response_model=Page[UserOut], tags=["users"], responses=problems(400, 401, 403, 429)
)
async def list_users(
    principal: UsersRead, session: TenantSession, page: PageParams
) -> Page[UserOut]:
    """The tenant's users, newest first."""
    rows, cursor = await IdentityRepository(session, principal.tenant_id).list_users(page)
    return Page(items=[UserOut.model_validate(u) for u in rows], next_cursor=cursor)


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    tags=["users"],
    responses=problems(401, 403, 409, 422, 429),
)
async def create_user(
    body: UserCreateIn, request: Request, principal: UsersWrite, session: TenantSession
) -> JSONResponse:
    """Create a staff user. The password must be 12–128 characters and not a common one.

    Only an owner can create another owner. Accepts `Idempotency-Key`.
    """
    idem = await claim(
        request,
        session,
        tenant_id=principal.tenant_id,
        caller=f"{principal.kind}:{principal.id}",
        required=False,
    )
    user = await service.create_user(
        session,
        principal.tenant_id,
        email=str(body.email),
        password=body.password,
        role=body.role.value,
        display_name=body.display_name,
        actor=principal,
        ip=client_ip(request),
    )
    return await idem.save(
        201, UserOut.model_validate(user).model_dump(mode="json"), location=f"/v1/users/{user.id}"
    )


@router.get(
    "/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    responses=problems(401, 403, 404, 429),
)
async def get_user(
    user_id: uuid.UUID, response: Response, principal: UsersRead, session: TenantSession
) -> UserOut:
    """One user of the tenant, with its `ETag`."""
    user = await service.get_user(IdentityRepository(session, principal.tenant_id), user_id)
    response.headers["ETag"] = etag(user.version)
    return UserOut.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    responses=problems(401, 403, 404, 409, 412, 422, 429),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserPatchIn,
    request: Request,
    response: Response,
    principal: UsersWrite,
    session: TenantSession,
    if_match: IfMatch = None,
) -> UserOut:
    """Change a user's role, active flag or display name (optionally guarded by `If-Match`).

    Disabling signs the user out everywhere; enabling also lifts a lockout.
    Only an owner can grant or take away the owner role; the tenant's last
    active owner stays.
    """
    user = await service.update_user(
        IdentityRepository(session, principal.tenant_id),
        user_id,
        actor=principal,
        role=body.role.value if body.role is not None else None,
        active=body.active,
        display_name=body.display_name,
        ip=client_ip(request),
        if_match=if_match,
    )
    response.headers["ETag"] = etag(user.version)
    return UserOut.model_validate(user)


@router.post(
    "/users/{user_id}/reset-mfa",
    response_model=UserOut,
    tags=["users"],
    responses=problems(401, 403, 404, 429),
)
async def reset_user_mfa(
    user_id: uuid.UUID, request: Request, principal: UsersWrite, session: TenantSession
) -> UserOut:
    """Remove a user's TOTP and recovery codes (a lost device) and end their sessions."""
    user = await service.reset_mfa(
        IdentityRepository(session, principal.tenant_id),
        user_id,
        actor=principal,
        ip=client_ip(request),
    )
    return UserOut.model_validate(user)


# -- API keys -------------------------------------------------------------------------------------
@router.get(
    "/api-keys",
    response_model=Page[ApiKeyOut],
    tags=["api-keys"],
    responses=problems(400, 401, 403, 429),
)
async def list_api_keys(
    principal: KeysRead, session: TenantSession, page: PageParams
) -> Page[ApiKeyOut]:
    """The tenant's API keys (never their secrets), newest first."""
    rows, cursor = await IdentityRepository(session, principal.tenant_id).list_api_keys(page)
    return Page(items=[ApiKeyOut.model_validate(k) for k in rows], next_cursor=cursor)


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreatedOut,
    tags=["api-keys"],
    responses=problems(401, 403, 422, 429),
)
async def create_api_key(
    body: ApiKeyCreateIn, request: Request, principal: KeysWrite, session: TenantSession
) -> ApiKeyCreatedOut:
    """Create an API key holding some of the caller's scopes; the secret `key` is shown once.

    An `Idempotency-Key` header is accepted but a retry creates a new key: the
    secret is never stored, so it cannot be replayed.
    """
    created = await service.create_api_key(
        IdentityRepository(session, principal.tenant_id),
        name=body.name,
        scopes=body.scopes,
        actor=principal,
        expires_at=body.expires_at,
        ip=client_ip(request),
    )
    return ApiKeyCreatedOut(**ApiKeyOut.model_validate(created.key).model_dump(), key=created.token)


@router.get(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    tags=["api-keys"],
    responses=problems(401, 403, 404, 429),
)
async def get_api_key(key_id: uuid.UUID, principal: KeysRead, session: TenantSession) -> ApiKeyOut:
    """One API key (without its secret)."""
    key = await service.get_api_key(IdentityRepository(session, principal.tenant_id), key_id)
    return ApiKeyOut.model_validate(key)


@router.post(
    "/api-keys/{key_id}/revoke",
    response_model=ApiKeyOut,
    tags=["api-keys"],
    responses=problems(401, 403, 404, 429),
)
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, principal: KeysWrite, session: TenantSession
) -> ApiKeyOut:
    """Revoke a key; it stops working at once. Revoking again changes nothing."""
    key = await service.revoke_api_key(
        IdentityRepository(session, principal.tenant_id),
        key_id,
        actor=principal,
        ip=client_ip(request),
    )
    return ApiKeyOut.model_validate(key)


# -- security events ------------------------------------------------------------------------------
@router.get(
    "/security-events",
    response_model=Page[SecurityEventOut],
    tags=["security-events"],
    responses=problems(400, 401, 403, 429),
)
async def list_security_events(
    principal: EventsRead,
    session: TenantSession,
    page: PageParams,
    kind: Annotated[str | None, Query(max_length=64, description="Only this kind.")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Only events about this user.")] = None,
) -> Page[SecurityEventOut]:
    """Sign-ins, failures, lockouts, MFA and key changes, role changes — newest first."""
    rows, cursor = await IdentityRepository(session, principal.tenant_id).list_security_events(
        page, kind=kind, user_id=user_id
    )
    return Page(items=[SecurityEventOut.model_validate(e) for e in rows], next_cursor=cursor)


# -- tenant ---------------------------------------------------------------------------------------
@router.get("/tenant", response_model=TenantOut, tags=["tenant"], responses=problems(401, 403, 429))
async def get_tenant(
    response: Response, principal: TenantRead, session: TenantSession
) -> TenantOut:
    """The caller's tenant and its policy, with its `ETag`."""
    tenant = await IdentityRepository(session, principal.tenant_id).tenant()
    response.headers["ETag"] = etag(tenant.version)
    return TenantOut.model_validate(tenant)


@router.patch(
    "/tenant",
    response_model=TenantOut,
    tags=["tenant"],
    responses=problems(401, 403, 412, 422, 429),
)
async def update_tenant(
    body: TenantPatchIn,
    request: Request,
    response: Response,
    principal: TenantWrite,
    session: TenantSession,
    if_match: IfMatch = None,
) -> TenantOut:
    """Rename the tenant or set its policy (`mfa_required_for_staff`); `If-Match` optional."""
    tenant = await service.update_tenant(
        IdentityRepository(session, principal.tenant_id),
        actor=principal,
        name=body.name,
        mfa_required_for_staff=body.mfa_required_for_staff,
        ip=client_ip(request),
        if_match=if_match,
    )
    response.headers["ETag"] = etag(tenant.version)
    return TenantOut.model_validate(tenant)
