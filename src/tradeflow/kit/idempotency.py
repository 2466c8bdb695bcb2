"""`Idempotency-Key` for creating POSTs, following draft-ietf-httpapi-idempotency-key-header.

* A retry with the same key and the same request returns the stored response
  (status, body and `Location`) — at least 24 h (`RETENTION`).
* The same key with a different request body → 422.
* The same key while the first request is still running → 409.
* Keys are scoped to the caller (API key or user) and to the method + path.

How: at the start of the request's transaction one statement takes a transaction-scoped
advisory lock derived from (tenant, caller, key) with `pg_try_advisory_xact_lock` and, if
it got it, reads the stored response. Failing to get the lock means another request holds
the key → 409. A live stored response → replay (status, body, `Location`, `ETag`) or 422.
Otherwise the endpoint runs and `save()` writes the response row *in the same transaction*
as the business change, so either both commit or neither does; the lock is released by
that commit. A crash mid-request leaves nothing behind, and the retry simply runs.

`save()` inserts over an expired copy of the key (no separate DELETE). If it finds a live
one instead — the only way is a request with the same key that committed between this
statement's snapshot and its lock — it answers 409 and the transaction rolls back, so the
retry replays that response and nothing is done twice.

Both statements run on the session's driver (asyncpg) connection inside its transaction:
this is every creating POST's path, and the ORM's per-statement work would cost more than
the statements themselves.
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
from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy import DateTime, Integer, PrimaryKeyConstraint, String, delete
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tradeflow.db import driver_connection
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
    etag: Mapped[str | None] = mapped_column(String(64))
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


def to_json_bytes(body: Any) -> bytes:
    """A response body as JSON: pydantic models by their own serialiser, anything else as
    FastAPI would encode it."""
    if isinstance(body, BaseModel):
        return body.model_dump_json().encode()
    return to_json(jsonable_encoder(body))


class RenderedJSON(JSONResponse):
    """A JSON response whose body is already serialised (bytes are sent as they are)."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    location: str | None
    etag: str | None = None
    body_json: str | None = None  # the stored JSON text, sent as it is when set


class IdempotentReplay(Exception):
    """Raised to short-circuit the endpoint with a stored response.

    Carries plain values, not a row: the raise rolls the session back.
    """

    def __init__(self, stored: StoredResponse) -> None:
        self.stored = stored


# The lock, then (only if it was taken) the stored response, in one round trip.
_CLAIM = """
SELECT l.got, k.fingerprint, k.method, k.path, k.status, k.body, k.location, k.etag,
       k.expires_at
FROM (SELECT pg_try_advisory_xact_lock($1) AS got) AS l
LEFT JOIN LATERAL (
  SELECT * FROM idempotency_keys
  WHERE l.got AND tenant_id = $2 AND caller = $3 AND key = $4
) AS k ON true
"""

# Over an expired copy only; a live one (committed after the claim's snapshot) returns no row.
_SAVE = """
INSERT INTO idempotency_keys AS k
  (tenant_id, caller, key, fingerprint, method, path, status, body, location, etag,
   created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant_id, caller, key) DO UPDATE SET
  fingerprint = EXCLUDED.fingerprint, method = EXCLUDED.method, path = EXCLUDED.path,
  status = EXCLUDED.status, body = EXCLUDED.body, location = EXCLUDED.location,
  etag = EXCLUDED.etag, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
WHERE k.expires_at <= EXCLUDED.created_at
RETURNING 1
"""


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

    async def save(
        self, status: int, body: Any, *, location: str | None = None, etag: str | None = None
    ) -> JSONResponse:
        """Store the response with the business change and return it to the client.

        `body` may be a pydantic model (serialised once, by pydantic) or plain data.
        """
        content = to_json_bytes(body)
        if self.key is not None:
            now = utcnow()
            conn = await driver_connection(self.session)
            saved = await conn.fetchval(
                _SAVE,
                self.tenant_id,
                self.caller,
                self.key,
                self.fingerprint,
                self.method,
                self.path,
                status,
                content.decode(),
                location,
                etag,
                now,
                now + RETENTION,
            )
            if saved is None:
                raise _in_flight(self.key)
        headers = {}
        if location:
            headers["Location"] = location
        if etag:
            headers["ETag"] = etag
        return RenderedJSON(content, status_code=status, headers=headers)


def _in_flight(key: str) -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(
        f"A request with {HEADER} {key!r} is still being processed; retry shortly.",
        headers={"Retry-After": "1"},
    )


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
    path = request.url.path
    fp = fingerprint(request.method, path, body)
    if key is None:
        if required:
            raise IdempotencyKeyMissing(f"{request.method} {path} needs an {HEADER} header.")
        return Idempotency(session, tenant_id, caller, None, fp, request.method, path)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(f"{HEADER} must be 1–{MAX_KEY_LENGTH} printable characters.")

    conn = await driver_connection(session)
    row = await conn.fetchrow(_CLAIM, _lock_id(tenant_id, caller, key), tenant_id, caller, key)
    if not row["got"]:
        raise _in_flight(key)
    # An expired copy not yet purged leaves the key free: `save` writes over it.
    if row["fingerprint"] is not None and row["expires_at"] > utcnow():
        if row["fingerprint"] != fp:
            raise IdempotencyKeyReused(
                f"{HEADER} {key!r} was first used with a different request "
                f"({row['method']} {row['path']}); use a new key for a new request."
            )
        raise IdempotentReplay(
            StoredResponse(
                row["status"], None, row["location"], row["etag"], body_json=_text(row["body"])
            )
        )
    return Idempotency(session, tenant_id, caller, key, fp, request.method, path)


async def claim_before_body(
    request: Request, session: AsyncSession, *, tenant_id: uuid.UUID, caller: str
) -> Idempotency | None:
    """`claim` for a dependency, which FastAPI solves before it validates the body: a replay
    then costs authentication and the one look-up, not the body's model validation.

    Only a well-formed key is claimed here (None otherwise): a missing or malformed key is
    the endpoint's `claim` to refuse, after the body's own validation errors, as before.
    """
    key = request.headers.get(HEADER)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return None
    return await claim(request, session, tenant_id=tenant_id, caller=caller, required=True)


def _text(value: Any) -> str:
    # The application's engine hands JSONB over as text; a bare driver connection decodes it.
    return value if isinstance(value, str) else json.dumps(value)


def replay_response(exc: IdempotentReplay) -> JSONResponse:
    stored = exc.stored
    headers = {"Idempotent-Replayed": "true"}
    if stored.location:
        headers["Location"] = stored.location
    if stored.etag:
        headers["ETag"] = stored.etag
    content = stored.body_json.encode() if stored.body_json is not None else to_json(stored.body)
    return RenderedJSON(content, status_code=stored.status, headers=headers)


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete keys past retention (a scheduled job). Returns how many were removed."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= (now or utcnow()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
