"""Security events: a row in the tenant's `security_events`, a log line, and a metric.

The row is written in the same transaction as the change it describes, so an
event exists exactly when the change does. Failures that belong to no tenant
(an unknown e-mail) cannot be stored per tenant and are logged and counted only.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import structlog

from tradeflow.identity.models import SecurityEvent
from tradeflow.identity.principal import Principal
from tradeflow.identity.repository import IdentityRepository
from tradeflow.observability.metrics import SECURITY_EVENTS

log = structlog.get_logger("tradeflow.security")


class Kind(StrEnum):
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOCKOUT = "lockout"
    LOGOUT = "logout"
    REFRESH_REUSE = "refresh_reuse"
    MFA_ENROLLED = "mfa_enrolled"
    MFA_DISABLED = "mfa_disabled"
    MFA_RESET = "mfa_reset"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    USER_CREATED = "user_created"
    ROLE_CHANGED = "role_changed"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PASSWORD_CHANGED = "password_changed"
    TENANT_POLICY_CHANGED = "tenant_policy_changed"


async def record(
    repo: IdentityRepository,
    event: Kind,
    *,
    user_id: uuid.UUID | None = None,
    actor: Principal | None = None,
    ip: str | None = None,
    **details: Any,
) -> None:
    repo.session.add(
        SecurityEvent(
            tenant_id=repo.tenant_id,
            kind=event.value,
            user_id=user_id,
            actor_id=actor.id if actor else None,
            actor_kind=actor.kind if actor else None,
            ip=_inet(ip),
            details=details,
        )
    )
    SECURITY_EVENTS.labels(event.value).inc()
    log.info(
        "security_event",
        kind=event.value,
        tenant_id=str(repo.tenant_id),
        user_id=str(user_id) if user_id else None,
        actor_id=str(actor.id) if actor else None,
        ip=ip,
        **details,
    )


def log_only(event: Kind, *, ip: str | None = None, **details: Any) -> None:
    SECURITY_EVENTS.labels(event.value).inc()
    log.info("security_event", kind=event.value, ip=ip, **details)


def _inet(ip: str | None) -> str | None:
    import ipaddress

    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None
