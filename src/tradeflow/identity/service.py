"""Identity use cases other than signing in: tenants, users, API keys, security events.

Public functions here are what other contexts, the CLI and the demo seeder
call (`create_tenant`, `create_user`, `create_api_key`, …). None of them
commits: the caller's unit of work (request dependency, CLI command) does.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.errors import UnprocessableEntity
from tradeflow.identity import passwords
from tradeflow.identity.errors import (
    ApiKeyNotFound,
    EmailTaken,
    LastOwner,
    MissingScopes,
    ScopesNotHeld,
    SlugTaken,
    UserNotFound,
)
from tradeflow.identity.models import ApiKey, Tenant, User
from tradeflow.identity.principal import (
    ALL_SCOPES,
    BuyerRole,
    Principal,
    Role,
    scopes_for_role,
)
from tradeflow.identity.repository import CredentialRepository, IdentityRepository
from tradeflow.identity.security_events import Kind, record
from tradeflow.identity.tokens import new_api_key
from tradeflow.kit.etag import check_if_match
from tradeflow.kit.time import utcnow

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return slug or "tenant"


# -- tenants --------------------------------------------------------------------------------------
async def create_tenant(
    session: AsyncSession,
    *,
    name: str,
    slug: str | None = None,
    mfa_required_for_staff: bool = False,
) -> Tenant:
    """A new seller organisation (system session: no tenant exists yet to scope it to)."""
    slug = (slug or slugify(name)).lower()
    if not SLUG_RE.match(slug):
        raise UnprocessableEntity(
            "A slug is 1-63 lower-case letters, digits and inner hyphens.", field="slug"
        )
    if await CredentialRepository(session).slug_taken(slug):
        raise SlugTaken(f"The slug {slug!r} is taken.")
    tenant = Tenant(name=name, slug=slug, mfa_required_for_staff=mfa_required_for_staff)
    session.add(tenant)
    await session.flush()
    return tenant


async def update_tenant(
    repo: IdentityRepository,
    *,
    actor: Principal | None,
    name: str | None = None,
    mfa_required_for_staff: bool | None = None,
    ip: str | None = None,
    if_match: str | None = None,
) -> Tenant:
    tenant = await repo.tenant(for_update=True)
    check_if_match(if_match, tenant.version)
    if name is not None:
        tenant.name = name
    if (
        mfa_required_for_staff is not None
        and mfa_required_for_staff != tenant.mfa_required_for_staff
    ):
        tenant.mfa_required_for_staff = mfa_required_for_staff
        await record(
            repo,
            Kind.TENANT_POLICY_CHANGED,
            actor=actor,
            ip=ip,
            mfa_required_for_staff=mfa_required_for_staff,
        )
    tenant.updated_at = utcnow()
    tenant.version += 1
    await repo.session.flush()
    return tenant


# -- users ----------------------------------------------------------------------------------------
def _check_role(role: str, kind: str) -> None:
    valid = {r.value for r in (Role if kind == "staff" else BuyerRole)}
    if role not in valid:
        raise UnprocessableEntity(
            f"Role {role!r} is not a {kind} role; use one of {', '.join(sorted(valid))}.",
            field="role",
        )


def _check_may_touch_owner(actor: Principal | None, *roles: str | None) -> None:
    # Only an owner (or the operator's CLI, actor None) creates, promotes or demotes owners.
    if Role.OWNER.value in roles and actor is not None and actor.role != Role.OWNER.value:
        raise MissingScopes("Only an owner can grant or change the owner role.", missing=["owner"])


async def create_user(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    email: str,
    password: str,
    role: str,
    kind: str = "staff",
    customer_id: uuid.UUID | None = None,
    display_name: str | None = None,
    actor: Principal | None = None,
    ip: str | None = None,
) -> User:
    """Create a staff user (or a buyer user of `customer_id`) after checking the password policy."""
    repo = IdentityRepository(session, tenant_id)
    if kind not in ("staff", "buyer"):
        raise UnprocessableEntity("kind is 'staff' or 'buyer'.", field="kind")
    if (kind == "buyer") != (customer_id is not None):
        raise UnprocessableEntity(
            "Buyer users, and only they, have a customer_id.", field="customer_id"
        )
    _check_role(role, kind)
    _check_may_touch_owner(actor, role)
    passwords.check_policy(password)
    email = email.strip().lower()
    if await repo.user_by_email(email) is not None:
        raise EmailTaken(f"{email} already has an account in this tenant.")
    user = User(
        tenant_id=tenant_id,
        email=email,
        password_hash=await passwords.hash_password_async(password),
        role=role,
        kind=kind,
        customer_id=customer_id,
        display_name=display_name,
    )
    try:
        async with session.begin_nested():
            await repo.add(user)
    except IntegrityError as exc:  # a concurrent create with the same e-mail
        raise EmailTaken(f"{email} already has an account in this tenant.") from exc
    await record(
        repo, Kind.USER_CREATED, user_id=user.id, actor=actor, ip=ip, role=role, user_kind=kind
    )
    return user


async def get_user(repo: IdentityRepository, user_id: uuid.UUID) -> User:
    user = await repo.user(user_id)
    if user is None:
        raise UserNotFound(f"No user {user_id} in this tenant.")
    return user


async def update_user(
    repo: IdentityRepository,
    user_id: uuid.UUID,
    *,
    actor: Principal | None,
    role: str | None = None,
    active: bool | None = None,
    display_name: str | None = None,
    ip: str | None = None,
    if_match: str | None = None,
) -> User:
    """Change a user's role, active flag or name; a tenant keeps at least one active owner."""
    user = await repo.user(user_id, for_update=True)
    if user is None:
        raise UserNotFound(f"No user {user_id} in this tenant.")
    check_if_match(if_match, user.version)
    if role is not None and role != user.role:
        _check_role(role, user.kind)
        _check_may_touch_owner(actor, role, user.role)
        if user.role == Role.OWNER.value and user.active:
            await _keep_an_owner(repo)
        old, user.role = user.role, role
        await record(
            repo, Kind.ROLE_CHANGED, user_id=user.id, actor=actor, ip=ip, old=old, new=role
        )
    if active is False and user.active:
        _check_may_touch_owner(actor, user.role)
        if user.role == Role.OWNER.value:
            await _keep_an_owner(repo)
        user.active = False
        # A disabled user is signed out everywhere at once, not when tokens expire.
        await repo.revoke_user_sessions(user.id, reason="user_disabled")
        await record(repo, Kind.USER_DISABLED, user_id=user.id, actor=actor, ip=ip)
    elif active is True:
        if not user.active:
            await record(repo, Kind.USER_ENABLED, user_id=user.id, actor=actor, ip=ip)
        # Enabling also lifts a lockout: the operator's way to let someone in early.
        user.active = True
        user.failed_logins = 0
        user.locked_until = None
    if display_name is not None:
        user.display_name = display_name
    user.updated_at = utcnow()
    user.version += 1
    await repo.session.flush()
    return user


async def _keep_an_owner(repo: IdentityRepository) -> None:
    if await repo.count_active_owners() <= 1:
        raise LastOwner("This is the tenant's last active owner; make someone else owner first.")


async def set_password(
    repo: IdentityRepository,
    user: User,
    password: str,
    *,
    actor: Principal | None,
    ip: str | None = None,
) -> None:
    passwords.check_policy(password)
    user.password_hash = await passwords.hash_password_async(password)
    user.updated_at = utcnow()
    user.version += 1
    await repo.revoke_user_sessions(user.id, reason="password_changed")
    await record(repo, Kind.PASSWORD_CHANGED, user_id=user.id, actor=actor, ip=ip)


async def reset_mfa(
    repo: IdentityRepository, user_id: uuid.UUID, *, actor: Principal | None, ip: str | None = None
) -> User:
    """Remove a user's TOTP and recovery codes (lost device); they enrol again at next login."""
    user = await get_user(repo, user_id)
    _check_may_touch_owner(actor, user.role)
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_last_step = None
    user.mfa_enabled_at = None
    user.updated_at = utcnow()
    user.version += 1
    await repo.delete_recovery_codes(user.id)
    await repo.revoke_user_sessions(user.id, reason="mfa_reset")
    await record(repo, Kind.MFA_RESET, user_id=user.id, actor=actor, ip=ip)
    await repo.session.flush()
    return user


# -- API keys -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    key: ApiKey
    token: str  # the secret, returned once and never stored


async def create_api_key(
    repo: IdentityRepository,
    *,
    name: str,
    scopes: frozenset[str] | set[str] | list[str],
    actor: Principal | None,
    expires_at: datetime | None = None,
    created_by: uuid.UUID | None = None,
    ip: str | None = None,
) -> CreatedApiKey:
    """A new key holding `scopes`, which must all be held by the creator (least privilege)."""
    wanted = frozenset(scopes)
    unknown = wanted - ALL_SCOPES
    if unknown:
        raise UnprocessableEntity(f"Unknown scopes: {', '.join(sorted(unknown))}.", field="scopes")
    if not wanted:
        raise UnprocessableEntity("An API key needs at least one scope.", field="scopes")
    if actor is not None:
        beyond = wanted - actor.scopes
        if beyond:
            raise ScopesNotHeld(
                f"You cannot grant scopes you do not hold: {', '.join(sorted(beyond))}.",
                scopes=sorted(beyond),
            )
    if expires_at is not None and expires_at <= utcnow():
        raise UnprocessableEntity("expires_at must be in the future.", field="expires_at")
    new = new_api_key()
    key = ApiKey(
        tenant_id=repo.tenant_id,
        name=name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=sorted(wanted),
        created_by=created_by if created_by is not None else (actor.user_id if actor else None),
        expires_at=expires_at,
    )
    await repo.add(key)
    await record(
        repo, Kind.API_KEY_CREATED, actor=actor, ip=ip, api_key_id=str(key.id), prefix=key.prefix
    )
    return CreatedApiKey(key=key, token=new.token)


async def get_api_key(repo: IdentityRepository, key_id: uuid.UUID) -> ApiKey:
    key = await repo.api_key(key_id)
    if key is None:
        raise ApiKeyNotFound(f"No API key {key_id} in this tenant.")
    return key


async def revoke_api_key(
    repo: IdentityRepository, key_id: uuid.UUID, *, actor: Principal | None, ip: str | None = None
) -> ApiKey:
    """Revoke a key at once; revoking a revoked key changes nothing."""
    key = await get_api_key(repo, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await record(
            repo,
            Kind.API_KEY_REVOKED,
            actor=actor,
            ip=ip,
            api_key_id=str(key.id),
            prefix=key.prefix,
        )
        await repo.session.flush()
    return key


def principal_scopes_for_user(user: User) -> frozenset[str]:
    return scopes_for_role(user.role)
