"""`/v1/auth/*` and `/v1/me*`: signing in and out, who am I, and the caller's own MFA."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.identity import mfa
from tradeflow.identity.admin_endpoints import router as admin_router
from tradeflow.identity.auth import (
    Authenticated,
    Bearer,
    EnrollingTenantSession,
    EnrollingUser,
    SignedInUser,
    TenantSession,
    current_principal,
)
from tradeflow.identity.errors import MfaNotEnabled, UserOnly
from tradeflow.identity.models import User
from tradeflow.identity.principal import Principal
from tradeflow.identity.repository import IdentityRepository
from tradeflow.identity.schemas import (
    LoginIn,
    LogoutIn,
    MeOut,
    MfaCodeIn,
    MfaEnrolOut,
    MfaStatusOut,
    RecoveryCodesOut,
    RefreshIn,
    TokenOut,
)
from tradeflow.identity.sessions import Authenticator, Client, IssuedTokens, LoginPolicy
from tradeflow.identity.totp import qr_png, qr_png_base64
from tradeflow.kit.openapi import problems
from tradeflow.kit.ratelimit import client_ip

router = APIRouter()
auth_router = APIRouter(prefix="/auth", tags=["auth"])
me_router = APIRouter(prefix="/me", tags=["me"])


def authenticator(request: Request) -> Authenticator:
    state = request.app.state
    policy = getattr(state, "login_policy", None)
    if policy is None:
        policy = state.login_policy = LoginPolicy.from_settings(state.settings)
    return Authenticator(
        db=state.db,
        settings=state.settings,
        keyring=state.keyring,
        limiter=state.ratelimiter,
        policy=policy,
    )


def client_of(request: Request) -> Client:
    return Client(ip=client_ip(request), user_agent=request.headers.get("user-agent"))


async def auth_rate_limit(request: Request, *keys: str) -> None:
    """The stricter `auth` limit, counted separately for each key (IP, e-mail, user)."""
    settings: Settings = request.app.state.settings
    for key in keys:
        await request.app.state.ratelimiter.check(
            request, policy="auth", limit=settings.ratelimit_auth, key=key
        )


def _token_out(tokens: IssuedTokens, response: Response) -> TokenOut:
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return TokenOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


# -- /v1/auth -------------------------------------------------------------------------------------
@auth_router.post("/login", response_model=TokenOut, responses=problems(401, 422, 429))
async def login(body: LoginIn, request: Request, response: Response) -> TokenOut:
    """Sign in with e-mail and password (plus `totp_code` or `recovery_code` when MFA is on).

    Every sign-in starts a new session. Errors: 401 `invalid-credentials` (one
    answer for unknown e-mail, wrong password and lockout), 401 `mfa-required`
    (send a code), 401 `invalid-mfa-code` (wrong or replayed), 401
    `mfa-enrolment-required` (the tenant requires MFA: the problem carries an
    `enrolment_token` for `/v1/me/mfa/enrol` and `/confirm`), 422
    `tenant-required` (the e-mail exists in several tenants), 429.
    """
    client = client_of(request)
    await auth_rate_limit(request, f"ip:{client.ip}", f"email:{body.email.strip().lower()}")
    tokens = await authenticator(request).login(
        client,
        email=body.email,
        password=body.password,
        totp_code=body.totp_code,
        recovery_code=body.recovery_code,
        tenant=body.tenant,
    )
    return _token_out(tokens, response)


@auth_router.post("/refresh", response_model=TokenOut, responses=problems(401, 422, 429))
async def refresh(body: RefreshIn, request: Request, response: Response) -> TokenOut:
    """Exchange a refresh token for a new access and refresh token (the old one is spent).

    Presenting a spent refresh token again revokes its whole session: someone
    copied it.
    """
    client = client_of(request)
    await auth_rate_limit(request, f"ip:{client.ip}")
    tokens = await authenticator(request).refresh(client, body.refresh_token)
    return _token_out(tokens, response)


@auth_router.post("/logout", status_code=204, responses=problems(401, 422, 429))
async def logout(request: Request, credentials: Bearer, body: LogoutIn | None = None) -> Response:
    """End a session: the Bearer access token's, or the one `refresh_token` belongs to."""
    auth = authenticator(request)
    client = client_of(request)
    if body is not None and body.refresh_token:
        await auth_rate_limit(request, f"ip:{client.ip}")
        await auth.logout_refresh(client, body.refresh_token)
    else:
        principal = await current_principal(request, credentials)
        if principal.kind != "user":
            raise UserOnly("An API key has no session; revoke it instead.")
        async with request.app.state.db.tenant_session(principal.tenant_id) as session:
            await auth.logout_principal(
                IdentityRepository(session, principal.tenant_id), principal, client
            )
            await session.commit()
    return Response(status_code=204)


# -- /v1/me ---------------------------------------------------------------------------------------
async def _me_user(session: AsyncSession, principal: Principal) -> User:
    if principal.kind != "user":
        raise UserOnly("This concerns a signed-in user, not an API key.")
    user = await IdentityRepository(session, principal.tenant_id).user(principal.id)
    assert user is not None  # the principal was resolved from this row moments ago
    return user


@me_router.get("", response_model=MeOut, responses=problems(401, 429))
async def me(principal: Authenticated, session: TenantSession) -> MeOut:
    """The caller: a user (access token) or an API key, with its tenant and scopes."""
    out = MeOut(
        kind=principal.kind,
        id=principal.id,
        tenant_id=principal.tenant_id,
        scopes=sorted(principal.scopes),
        role=principal.role,
        session_id=principal.session_id,
        customer_id=principal.customer_id,
    )
    repo = IdentityRepository(session, principal.tenant_id)
    if principal.kind == "user":
        user = await _me_user(session, principal)
        out.email, out.user_kind, out.mfa_enabled = user.email, user.kind, user.mfa_enabled
    else:
        key = await repo.api_key(principal.id)
        if key is not None:
            out.api_key_name, out.api_key_prefix = key.name, key.prefix
    return out


def _mfa_status_from(user: User, remaining: int, required: bool) -> MfaStatusOut:
    return MfaStatusOut(
        enabled=user.mfa_enabled,
        pending=user.totp_pending_secret is not None,
        recovery_codes_remaining=remaining,
        required_by_policy=required,
    )


@me_router.get("/mfa", response_model=MfaStatusOut, responses=problems(401, 403, 429))
async def mfa_status(principal: EnrollingUser, session: EnrollingTenantSession) -> MfaStatusOut:
    """Whether MFA is on for the caller, and how many recovery codes are left."""
    user = await _me_user(session, principal)
    repo = IdentityRepository(session, principal.tenant_id)
    tenant = await repo.tenant()
    return _mfa_status_from(
        user,
        await repo.count_recovery_codes(user.id),
        tenant.mfa_required_for_staff and user.kind == "staff",
    )


@me_router.post("/mfa/enrol", response_model=MfaEnrolOut, responses=problems(401, 403, 409, 429))
async def mfa_enrol(
    request: Request, principal: EnrollingUser, session: EnrollingTenantSession
) -> MfaEnrolOut:
    """Start TOTP enrolment: a new seed, its otpauth URI and a QR code.

    Nothing changes for sign-in until `POST /v1/me/mfa/confirm` with a code
    from the authenticator. Enrolling again before confirming replaces the seed.
    """
    user = await _me_user(session, principal)
    enrolment = await mfa.enrol(
        IdentityRepository(session, principal.tenant_id), request.app.state.keyring, user
    )
    return MfaEnrolOut(
        secret=enrolment.secret,
        otpauth_uri=enrolment.otpauth_uri,
        qr_png_base64=qr_png_base64(enrolment.otpauth_uri),
        qr_png_url="/v1/me/mfa/qr.png",
    )


@me_router.get(
    "/mfa/qr.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "QR code"},
        **problems(401, 403, 409, 429),
    },
)
async def mfa_qr(
    request: Request, principal: EnrollingUser, session: EnrollingTenantSession
) -> Response:
    """The pending enrolment's otpauth URI as a PNG QR code."""
    user = await _me_user(session, principal)
    uri = await mfa.pending_uri(
        IdentityRepository(session, principal.tenant_id), request.app.state.keyring, user
    )
    if uri is None:
        raise MfaNotEnabled("No enrolment is pending; POST /v1/me/mfa/enrol first.")
    return Response(qr_png(uri), media_type="image/png", headers={"Cache-Control": "no-store"})


@me_router.post(
    "/mfa/confirm", response_model=RecoveryCodesOut, responses=problems(401, 403, 409, 422, 429)
)
async def mfa_confirm(
    body: MfaCodeIn, request: Request, principal: EnrollingUser, session: EnrollingTenantSession
) -> RecoveryCodesOut:
    """Turn MFA on with a code from the authenticator; returns ten one-time recovery codes."""
    await auth_rate_limit(request, f"ip:{client_ip(request)}", f"user:{principal.id}")
    user = await _me_user(session, principal)
    codes = await mfa.confirm(
        IdentityRepository(session, principal.tenant_id),
        request.app.state.keyring,
        user,
        body.code,
        actor=principal,
        ip=client_ip(request),
    )
    return RecoveryCodesOut(recovery_codes=codes)


@me_router.post("/mfa/disable", status_code=204, responses=problems(401, 403, 409, 422, 429))
async def mfa_disable(
    body: MfaCodeIn, request: Request, principal: SignedInUser, session: TenantSession
) -> Response:
    """Turn MFA off; needs a current code. Refused while the tenant requires MFA for staff."""
    await auth_rate_limit(request, f"ip:{client_ip(request)}", f"user:{principal.id}")
    user = await _me_user(session, principal)
    await mfa.disable(
        IdentityRepository(session, principal.tenant_id),
        request.app.state.keyring,
        user,
        body.code,
        actor=principal,
        ip=client_ip(request),
    )
    return Response(status_code=204)


@me_router.post(
    "/mfa/recovery-codes",
    response_model=RecoveryCodesOut,
    responses=problems(401, 403, 409, 422, 429),
)
async def mfa_recovery_codes(
    body: MfaCodeIn, request: Request, principal: SignedInUser, session: TenantSession
) -> RecoveryCodesOut:
    """Replace all recovery codes with ten new ones; needs a current code."""
    await auth_rate_limit(request, f"ip:{client_ip(request)}", f"user:{principal.id}")
    user = await _me_user(session, principal)
    codes = await mfa.regenerate_recovery_codes(
        IdentityRepository(session, principal.tenant_id),
        request.app.state.keyring,
        user,
        body.code,
        actor=principal,
        ip=client_ip(request),
    )
    return RecoveryCodesOut(recovery_codes=codes)


router.include_router(auth_router)
router.include_router(me_router)
router.include_router(admin_router)
