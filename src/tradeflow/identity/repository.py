"""Every query of the identity context.

Two repositories, so the tenancy rule lives in one place each:

* `IdentityRepository(session, tenant_id)` — everything inside one tenant;
  each statement goes through `_scoped`, which adds `tenant_id = :tenant`
  (and row-level security enforces the same under a tenant session);
* `CredentialRepository(session)` — the few cross-tenant look-ups that
  resolve a credential before the tenant is known (login by e-mail, API key
  by prefix, refresh token by hash), plus the operator's tenant listing.
  It runs under `Database.system_session()` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.identity.models import (
    ApiKey,
    AuthSession,
    RecoveryCode,
    RefreshToken,
    SecurityEvent,
    Tenant,
    User,
)
from tradeflow.kit.pagination import PageRequest, paginate
from tradeflow.kit.time import utcnow

M = TypeVar("M", User, ApiKey, AuthSession, RecoveryCode, RefreshToken, SecurityEvent)

API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class IdentityRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _scoped(self, model: type[M], stmt: Select[Any] | None = None) -> Select[Any]:
        stmt = select(model) if stmt is None else stmt
        return stmt.where(model.tenant_id == self.tenant_id)

    async def _one(self, model: type[M], *where: Any) -> M | None:
        result = await self.session.execute(self._scoped(model).where(*where))
        return result.scalar_one_or_none()  # type: ignore[no-any-return]

    # -- tenant -------------------------------------------------------------------------------
    async def tenant(self, *, for_update: bool = False) -> Tenant:
        stmt = select(Tenant).where(Tenant.id == self.tenant_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one()

    # -- users --------------------------------------------------------------------------------
    async def user(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        stmt = self._scoped(User).where(User.id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        user: User | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return user

    async def user_by_email(self, email: str) -> User | None:
        return await self._one(User, func.lower(User.email) == email.lower())

    async def list_users(self, page: PageRequest) -> tuple[list[User], str | None]:
        return await paginate(self.session, self._scoped(User), page, order_by=[User.id])

    async def add(self, row: Any) -> None:
        if getattr(row, "tenant_id", None) is None:
            row.tenant_id = self.tenant_id
        assert row.tenant_id == self.tenant_id, "row belongs to another tenant"
        self.session.add(row)
        await self.session.flush()

    async def count_active_owners(self) -> int:
        stmt = self._scoped(User, select(func.count()).select_from(User)).where(
            User.role == "owner", User.active.is_(True)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    # -- recovery codes -----------------------------------------------------------------------
    async def replace_recovery_codes(self, user_id: uuid.UUID, hashes: Sequence[bytes]) -> None:
        await self.delete_recovery_codes(user_id)
        self.session.add_all(
            RecoveryCode(tenant_id=self.tenant_id, user_id=user_id, code_hash=h) for h in hashes
        )
        await self.session.flush()

    async def delete_recovery_codes(self, user_id: uuid.UUID) -> None:
        from sqlalchemy import delete

        await self.session.execute(
            delete(RecoveryCode).where(
                RecoveryCode.tenant_id == self.tenant_id, RecoveryCode.user_id == user_id
            )
        )

    async def spend_recovery_code(self, user_id: uuid.UUID, code_hash: bytes) -> bool:
        """Mark the matching unused code used; False when none matches (wrong or spent)."""
        result = await self.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.tenant_id == self.tenant_id,
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .returning(RecoveryCode.id)
        )
        return result.first() is not None

    async def count_recovery_codes(self, user_id: uuid.UUID) -> int:
        stmt = self._scoped(RecoveryCode, select(func.count()).select_from(RecoveryCode)).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    # -- sessions and refresh tokens ----------------------------------------------------------
    async def auth_session(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self._one(AuthSession, AuthSession.id == session_id)

    async def revoke_session(self, session_id: uuid.UUID, *, reason: str) -> bool:
        result = await self.session.execute(
            update(AuthSession)
            .where(
                AuthSession.tenant_id == self.tenant_id,
                AuthSession.id == session_id,
                AuthSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .returning(AuthSession.id)
        )
        return result.first() is not None

    async def revoke_user_sessions(self, user_id: uuid.UUID, *, reason: str) -> int:
        result = await self.session.execute(
            update(AuthSession)
            .where(
                AuthSession.tenant_id == self.tenant_id,
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .returning(AuthSession.id)
        )
        return len(result.all())

    async def claim_refresh_token(self, token_id: uuid.UUID) -> bool:
        """Atomically mark a refresh token used; False if it already was (a reuse)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.tenant_id == self.tenant_id,
                RefreshToken.id == token_id,
                RefreshToken.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .returning(RefreshToken.id)
        )
        return result.first() is not None

    # -- API keys -----------------------------------------------------------------------------
    async def api_key(self, key_id: uuid.UUID) -> ApiKey | None:
        return await self._one(ApiKey, ApiKey.id == key_id)

    async def list_api_keys(self, page: PageRequest) -> tuple[list[ApiKey], str | None]:
        return await paginate(self.session, self._scoped(ApiKey), page, order_by=[ApiKey.id])

    # -- security events ----------------------------------------------------------------------
    async def list_security_events(
        self, page: PageRequest, *, kind: str | None = None, user_id: uuid.UUID | None = None
    ) -> tuple[list[SecurityEvent], str | None]:
        stmt = self._scoped(SecurityEvent)
        if kind:
            stmt = stmt.where(SecurityEvent.kind == kind)
        if user_id:
            stmt = stmt.where(SecurityEvent.user_id == user_id)
        return await paginate(self.session, stmt, page, order_by=[SecurityEvent.id])


class CredentialRepository:
    """Cross-tenant credential look-ups; use only under a system session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tenant_by_ref(self, ref: str) -> Tenant | None:
        as_id = _parse_uuid(ref)
        cond = Tenant.id == as_id if as_id else Tenant.slug == ref.lower()
        return (await self.session.execute(select(Tenant).where(cond))).scalar_one_or_none()

    async def login_candidates(
        self, email: str, *, tenant_id: uuid.UUID | None = None
    ) -> list[tuple[User, Tenant]]:
        stmt = (
            select(User, Tenant)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(func.lower(User.email) == email.lower())
            .limit(10)
        )
        if tenant_id is not None:
            stmt = stmt.where(User.tenant_id == tenant_id)
        rows = (await self.session.execute(stmt)).all()
        return [(u, t) for u, t in rows]

    async def user_for_update(self, user_id: uuid.UUID) -> User | None:
        stmt = select(User).where(User.id == user_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.prefix == prefix)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def touch_api_key(self, key_id: uuid.UUID, now: datetime) -> None:
        """Record use at most once per interval, so a busy key is not a write per request."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - API_KEY_TOUCH_INTERVAL,
                ),
            )
            .values(last_used_at=now)
        )

    async def session_and_user(
        self, session_id: uuid.UUID, user_id: uuid.UUID, tenant_id: uuid.UUID
    ) -> tuple[AuthSession, User] | None:
        stmt = (
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.id == session_id,
                AuthSession.user_id == user_id,
                AuthSession.tenant_id == tenant_id,
            )
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def user(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> User | None:
        stmt = select(User).where(User.id == user_id, User.tenant_id == tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def refresh_token(
        self, token_hash: bytes
    ) -> tuple[RefreshToken, AuthSession, User] | None:
        stmt = (
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1], row[2]) if row else None

    async def tenants(self) -> list[Tenant]:
        return list(
            (await self.session.execute(select(Tenant).order_by(Tenant.created_at))).scalars()
        )

    async def slug_taken(self, slug: str) -> bool:
        stmt = select(func.count()).select_from(Tenant).where(Tenant.slug == slug.lower())
        return bool((await self.session.execute(stmt)).scalar_one())
