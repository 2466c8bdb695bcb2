"""Who is calling: the principal, the permission scopes, and what each staff role holds.

Scopes are `<resource>:<action>`; `read` never implies `write`. Roles are
fixed sets of scopes (least privilege): only owner and admin manage users and
API keys; auditor reads everything and writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    SALES = "sales"
    FINANCE = "finance"
    OPERATIONS = "operations"
    AUDITOR = "auditor"


class BuyerRole(StrEnum):
    """Roles of buyer users, who belong to one customer company of the seller."""

    BUYER = "buyer"
    APPROVER = "approver"
    BUYER_ADMIN = "buyer-admin"


RESOURCES = (
    "tenant",
    "users",
    "api_keys",
    "security_events",
    "customers",
    "catalog",
    "prices",
    "orders",
    "invoices",
    "payments",
    "ledger",
    "connectors",
    "webhooks",
    "events",
    "alerts",
    "audit",
    "flags",
    "analytics",
)

ALL_SCOPES: frozenset[str] = frozenset(
    f"{resource}:{action}" for resource in RESOURCES for action in ("read", "write")
)
READ_SCOPES: frozenset[str] = frozenset(s for s in ALL_SCOPES if s.endswith(":read"))


def _scopes(*names: str) -> frozenset[str]:
    out: set[str] = set()
    for name in names:
        if name.endswith(":*"):
            resource = name[:-2]
            out |= {f"{resource}:read", f"{resource}:write"}
        else:
            out.add(name)
    unknown = out - ALL_SCOPES
    assert not unknown, f"unknown scopes {unknown}"
    return frozenset(out)


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.OWNER: ALL_SCOPES,
    Role.ADMIN: ALL_SCOPES,
    Role.SALES: READ_SCOPES - {"security_events:read", "audit:read", "users:read", "api_keys:read"}
    | _scopes("customers:*", "orders:*", "prices:*", "catalog:*"),
    Role.FINANCE: READ_SCOPES - {"security_events:read", "users:read", "api_keys:read"}
    | _scopes("invoices:*", "payments:*", "ledger:*", "connectors:*"),
    Role.OPERATIONS: READ_SCOPES - {"security_events:read", "users:read", "api_keys:read"}
    | _scopes(
        "orders:*", "catalog:*", "webhooks:*", "events:*", "connectors:*", "alerts:*", "flags:*"
    ),
    Role.AUDITOR: READ_SCOPES,
}


# Buyers see only their own company's data; endpoints that serve buyers must also filter
# by `Principal.customer_id` (the tenant wall alone is not enough for them).
BUYER_ROLE_SCOPES: dict[BuyerRole, frozenset[str]] = {
    BuyerRole.BUYER: _scopes(
        "catalog:read", "prices:read", "orders:*", "invoices:read", "payments:*"
    ),
    BuyerRole.APPROVER: _scopes(
        "catalog:read", "prices:read", "orders:*", "invoices:read", "payments:*"
    ),
    BuyerRole.BUYER_ADMIN: _scopes(
        "catalog:read", "prices:read", "orders:*", "invoices:read", "payments:*", "customers:read"
    ),
}


def scopes_for_role(role: str) -> frozenset[str]:
    """Scopes of a staff or buyer role; an unknown role has none."""
    if role in Role.__members__.values():
        return ROLE_SCOPES[Role(role)]
    if role in BuyerRole.__members__.values():
        return BUYER_ROLE_SCOPES[BuyerRole(role)]
    return frozenset()


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, resolved once per request."""

    kind: Literal["user", "api_key"]
    id: uuid.UUID  # the user's id or the API key's id
    tenant_id: uuid.UUID
    scopes: frozenset[str]
    user_id: uuid.UUID | None = None  # the user behind a token; the key's creator for API keys
    role: str | None = None
    session_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None  # set for buyer users: the company they buy for
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_buyer(self) -> bool:
        return self.customer_id is not None
