"""`Idempotency-Key` for creating POSTs, following draft-ietf-httpapi-idempotency-key-header.

* A retry with the same key and the same request returns the stored response
  (status, body and `Location`) — at least 24 h (`RETENTION`).
* The same key with a different request body → 422.
* The same key while the first request is still running → 409.
* Keys are scoped to the caller (API key or user) and to the method + path.

How: at the start of the request's transaction we take a transaction-scoped
advisory lock derived from (tenant, caller, key) with `pg_try_advisory_xact_lock`.
Failing to get it means another request holds the key → 409. Holding it, we
look for a stored response (→ replay or 422). Otherwise the endpoint runs and
`save()` writes the response row *in the same transaction* as the business
change, so either both commit or neither does; the lock is released by that
commit. A crash mid-request leaves nothing behind, and the retry simply runs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import DateTime, Integer, PrimaryKeyConstraint, String, delete, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.errors import BadRequest, Conflict, UnprocessableEntity
from tradeflow.kit.models import Base, TenantMixin
from tradeflow.kit.time import utcnow

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKeyMissing(BadRequest):
    slug, title = "idempotency-key-missing", "Idempotency-Key required"


class IdempotencyKeyInvalid(BadRequest):
    slug, title = "idempotency-key-invalid", "Invalid Idempotency-Key"


class IdempotencyKeyInFlight(Conflict):
    slug, title = "idempotency-key-in-flight", "Request with this Idempotency-Key in progress"


class IdempotencyKeyReused(UnprocessableEntity):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different request"


class IdempotencyRecord(TenantMixin, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "caller", "key"),)

    caller: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSONB)
    location: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same request ⇔ same fingerprint; JSON bodies are compared canonically (key order, spaces)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    h = hashlib.sha256()
    h.update(method.encode() + b" " + path.encode() + b"\n")
    h.update(canonical)
    return h.hexdigest()


def _lock_id(tenant_id: uuid.UUID, caller: str, key: str) -> int:
    digest = hashlib.blake2b(f"{tenant_id}|{caller}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    location: str | None


class IdempotentReplay(Exception):
    """Raised to short-circuit the endpoint with a stored response.

    Carries plain values, not the ORM row: the raise rolls the session back.
    """

    def __init__(self, stored: StoredResponse) -> None:
        self.stored = stored


@dataclass
class Idempotency:
    """The claim on one key for the duration of one request's transaction."""

    session: AsyncSession
    tenant_id: uuid.UUID
    caller: str
    key: str | None
    fingerprint: str
    method: str
    path: str

    async def save(self, status: int, body: Any, *, location: str | None = None) -> JSONResponse:
        """Store the response with the business change and return it to the client."""
        content = jsonable_encoder(body)
        if self.key is not None:
            now = utcnow()
            await self.session.execute(
                insert(IdempotencyRecord).values(
                    tenant_id=self.tenant_id,
                    caller=self.caller,
                    key=self.key,
                    fingerprint=self.fingerprint,
                    method=self.method,
                    path=self.path,
                    status=status,
                    body=content,
                    location=location,
                    created_at=now,
                    expires_at=now + RETENTION,
                )
            )
        headers = {"Location": location} if location else {}
        return JSONResponse(content, status_code=status, headers=headers)


async def claim(
    request: Request,
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    caller: str,
    required: bool,
) -> Idempotency:
    """Claim the request's key: replay, refuse, or let the endpoint run (see module docs)."""
    key = request.headers.get(HEADER)
    body = await request.body()
    fp = fingerprint(request.method, request.url.path, body)
    if key is None:
        if required:
            raise IdempotencyKeyMissing(
                f"{request.method} {request.url.path} needs an {HEADER} header."
            )
        return Idempotency(session, tenant_id, caller, None, fp, request.method, request.url.path)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(f"{HEADER} must be 1–{MAX_KEY_LENGTH} printable characters.")

    got = (
        await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _lock_id(tenant_id, caller, key)}
        )
    ).scalar_one()
    if not got:
        raise IdempotencyKeyInFlight(
            f"A request with {HEADER} {key!r} is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )
    record = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.tenant_id == tenant_id,
                IdempotencyRecord.caller == caller,
                IdempotencyRecord.key == key,
            )
        )
    ).scalar_one_or_none()
    if record is not None and record.expires_at > utcnow():
        if record.fingerprint != fp:
            raise IdempotencyKeyReused(
                f"{HEADER} {key!r} was first used with a different request "
                f"({record.method} {record.path}); use a new key for a new request."
            )
        raise IdempotentReplay(StoredResponse(record.status, record.body, record.location))
    if record is not None:
        # Expired but not yet purged: the key is free again.
        await session.delete(record)
        await session.flush()
    return Idempotency(session, tenant_id, caller, key, fp, request.method, request.url.path)


def replay_response(exc: IdempotentReplay) -> JSONResponse:
    stored = exc.stored
    headers = {"Idempotent-Replayed": "true"}
    if stored.location:
        headers["Location"] = stored.location
    return JSONResponse(stored.body, status_code=stored.status, headers=headers)


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete keys past retention (a scheduled job). Returns how many were removed."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= (now or utcnow()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
