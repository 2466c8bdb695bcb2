"""Request and response bodies of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from tradeflow.identity.principal import ALL_SCOPES, BuyerRole, Role


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- auth -----------------------------------------------------------------------------------------
class LoginIn(BaseModel):
    email: str = Field(max_length=320, examples=["owner@example.com"])
    password: str = Field(max_length=1024)
    totp_code: str | None = Field(default=None, max_length=16, description="Current TOTP code.")
    recovery_code: str | None = Field(
        default=None, max_length=64, description="A one-time recovery code instead of TOTP."
    )
    tenant: str | None = Field(
        default=None,
        max_length=63,
        description="Tenant id or slug; needed only when the e-mail exists in several tenants.",
    )


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=512)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(
        default=None,
        max_length=512,
        description="Ends this token's session; without it the Bearer token's session ends.",
    )


class MeOut(BaseModel):
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    tenant_id: uuid.UUID
    scopes: list[str]
    role: str | None = None
    email: str | None = None
    user_kind: str | None = None
    customer_id: uuid.UUID | None = None
    mfa_enabled: bool | None = None
    api_key_name: str | None = None
    api_key_prefix: str | None = None
    session_id: uuid.UUID | None = None


# -- MFA ------------------------------------------------------------------------------------------
class MfaStatusOut(BaseModel):
    enabled: bool
    pending: bool = Field(description="Enrolment started and awaiting confirmation.")
    recovery_codes_remaining: int
    required_by_policy: bool


class MfaEnrolOut(BaseModel):
    secret: str = Field(description="Base32 seed, for typing into an authenticator by hand.")
    otpauth_uri: str
    qr_png_base64: str = Field(description="The otpauth URI as a QR code (PNG, base64).")
    qr_png_url: str = Field(description="The same QR code as `image/png`.")


class MfaCodeIn(BaseModel):
    code: str = Field(min_length=6, max_length=16, description="A current TOTP code.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once.")


# -- users ----------------------------------------------------------------------------------------
class UserOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    email: str
    display_name: str | None
    role: str
    active: bool
    customer_id: uuid.UUID | None
    mfa_enabled: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class UserCreateIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)
    role: Role
    display_name: str | None = Field(default=None, max_length=200)


class UserPatchIn(BaseModel):
    role: Role | BuyerRole | None = None
    active: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)


# -- API keys -------------------------------------------------------------------------------------
class ApiKeyOut(_Out):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's non-secret id (`tf_live_<prefix>_…`).")
    scopes: list[str]
    created_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description="Each must be held by the creator.")
    expires_at: datetime | None = None

    @field_validator("scopes")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - ALL_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        return sorted(set(value))

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (UTC: a trailing Z)")
        return value


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The secret key. Shown this once; store it now.")


# -- security events and tenant -------------------------------------------------------------------
class SecurityEventOut(_Out):
    id: uuid.UUID
    kind: str
    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    actor_kind: str | None
    ip: str | None
    details: dict[str, Any]
    created_at: datetime

    @field_validator("ip", mode="before")
    @classmethod
    def _ip(cls, value: Any) -> str | None:
        return None if value is None else str(value)


class TenantOut(_Out):
    id: uuid.UUID
    name: str
    slug: str
    mfa_required_for_staff: bool
    version: int
    created_at: datetime
    updated_at: datetime


class TenantPatchIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    mfa_required_for_staff: bool | None = None
