"""Identity's tables: tenants, users, sessions and refresh tokens, API keys, recovery codes,
security events.

`tenants` is the root every tenant-owned table references (`kit.models.TenantMixin`).
Secrets are never stored in the clear: passwords are argon2id hashes, refresh
tokens, API keys and recovery codes are hashes, TOTP seeds are key-ring ciphertexts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.kit.keyring import register_encrypted_column
from tradeflow.kit.models import Base, IdMixin, TenantMixin, TimestampMixin


class Tenant(IdMixin, TimestampMixin, Base):
    """A seller organisation; every tenant-owned row points here."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    mfa_required_for_staff: Mapped[bool] = mapped_column(
        Boolean, server_default=text("false"), default=False
    )
    # Bumped by every administrative change; the ETag of `/v1/tenant`.
    version: Mapped[int] = mapped_column(server_default=text("1"), default=1)


class User(IdMixin, TenantMixin, TimestampMixin, Base):
    """A person who logs in: seller staff now, buyer users of customer companies later."""

    __tablename__ = "users"
    __table_args__ = (
        # E-mails are unique per tenant regardless of case; stored lower-cased too.
        Index("uq_users_tenant_id_email", "tenant_id", func.lower(text("email")), unique=True),
        Index("ix_users_email_lower", func.lower(text("email"))),
    )

    kind: Mapped[str] = mapped_column(String(16), server_default="staff", default="staff")
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    # Bumped by administrative changes (not by sign-ins); the ETag of `/v1/users/{id}`.
    version: Mapped[int] = mapped_column(server_default=text("1"), default=1)
    # Set for buyer users: the customer company they buy for (owned by the customers context).
    customer_id: Mapped[uuid.UUID | None] = mapped_column(index=True)

    # TOTP: the confirmed seed (encrypted), a pending seed awaiting confirmation, and the
    # last accepted time-step so that a code is accepted once only.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_pending_secret: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    mfa_enabled_at: Mapped[datetime | None] = mapped_column()

    # Per-account brute-force defence: consecutive failures, when the last one was,
    # and a lockout deadline.
    failed_logins: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    last_failed_login_at: Mapped[datetime | None] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()

    @property
    def mfa_enabled(self) -> bool:
        return self.totp_secret is not None


register_encrypted_column("users", "totp_secret")
register_encrypted_column("users", "totp_pending_secret")


class RecoveryCode(IdMixin, TenantMixin, Base):
    """One MFA recovery code, stored as a hash and spent once."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuthSession(IdMixin, TenantMixin, Base):
    """A login: the family of rotating refresh tokens and the access tokens minted from them."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(400))


class RefreshToken(IdMixin, TenantMixin, Base):
    """One refresh token of a session; used once, then replaced by its successor."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    used_at: Mapped[datetime | None] = mapped_column()


class ApiKey(IdMixin, TenantMixin, Base):
    """A scoped, hashed API key; `prefix` is the non-secret part used to find it."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class SecurityEvent(IdMixin, TenantMixin, Base):
    """An append-only record of something security-relevant that happened in a tenant."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_tenant_id_id", "tenant_id", "id"),)

    kind: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_kind: Mapped[str | None] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
