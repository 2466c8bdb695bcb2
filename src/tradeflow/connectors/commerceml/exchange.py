"""The 1C exchange protocol, with Tradeflow as the "site" 1C polls.

    GET  …?type=catalog|sale&mode=checkauth   HTTP Basic → "success\\n<cookie>\\n<value>"
    GET  …?type=…&mode=init                    → "zip=no\\nfile_limit=<bytes>"
    POST …?type=catalog&mode=file&filename=F   a chunk of F (appended) → "success"
    GET  …?type=catalog&mode=import&filename=F F applied to the catalog → "success",
                                               "progress\\n…" (call again), "failure\\n…"
    GET  …?type=sale&mode=query                → orders as a CommerceML document (XML)
    GET  …?type=sale&mode=success              the last query acknowledged → "success"
    POST …?type=sale&mode=file&filename=F      1C's order changes: recorded, not applied

Answers are plain text as 1C expects (`success`, `failure\\n<reason>`), not problem+json.
Every import and query leaves an audit row (`commerceml_exchanges`), failures included.
The session cookie is random, stored hashed, bound to the instance and short-lived.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from tradeflow.connectors.commerceml import operations
from tradeflow.connectors.commerceml.models import ExchangeSession, Upload
from tradeflow.connectors.commerceml.operations import (
    Target,
    acknowledge,
    audit,
    query_orders,
    resolve,
    run_import,
)
from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

KIND = operations.KIND
COOKIE = "tradeflow_cml"
TYPES = ("catalog", "sale")


@dataclass
class Reply:
    body: bytes
    status: int = 200
    media_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def text(*lines: str, status: int = 200, **headers: str) -> Reply:
    return Reply("\n".join(lines).encode(), status=status, headers=headers)


def failure(reason: str, status: int = 200, **headers: str) -> Reply:
    return text("failure", reason, status=status, **headers)


NOT_FOUND = failure("No such exchange.", status=404)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    login, _, password = raw.partition(":")
    return login, password


# -- the HTTP exchange -----------------------------------------------------------------------------


async def _session(db: Database, target: Target, token: str | None) -> ExchangeSession | None:
    if not token:
        return None
    async with db.tenant_session(target.tenant_id) as session:
        found = await CommerceMLRepository(session, target.tenant_id).session_by_hash(
            target.connector_id, _hash(token)
        )
        await session.commit()
    if found is None or found.expires_at <= utcnow():
        return None
    return found


async def handle(
    db: Database,
    keyring: Keyring,
    *,
    connector_id: uuid.UUID,
    exchange_type: str | None,
    mode: str | None,
    filename: str | None,
    authorization: str | None,
    cookie: str | None,
    body: bytes,
    max_body_bytes: int,
) -> Reply:
    target = await resolve(db, keyring, connector_id)
    if target is None:
        return NOT_FOUND
    config = target.config
    credentials = _basic(authorization)
    current = await _session(db, target, cookie)
    if current is None and credentials is None:
        # Nothing shows the caller knows this exchange: do not confirm that it exists.
        return NOT_FOUND
    if exchange_type not in TYPES:
        return failure("type must be catalog or sale.")
    if mode == "checkauth":
        return await _checkauth(db, target, credentials, exchange_type)
    if current is None:
        return failure(
            "Not authenticated: call mode=checkauth first.",
            status=401,
            **{"WWW-Authenticate": 'Basic realm="tradeflow-commerceml"'},
        )
    if target.paused and mode != "init":
        # Paused by an operator (`POST /v1/connectors/{id}/pause`): nothing flows either way.
        return failure("The exchange is paused in Tradeflow.")
    if mode == "init":
        async with db.tenant_session(target.tenant_id) as session:
            await CommerceMLRepository(session, target.tenant_id).drop_uploads(current.id)
            await session.commit()
        return text("zip=no", f"file_limit={min(config.file_limit, max_body_bytes)}")
    if mode == "file":
        return await _file(db, target, current, exchange_type, filename, body)
    if exchange_type == "catalog" and mode == "import":
        return await _import(db, target, current, filename)
    if exchange_type == "sale" and mode == "query":
        document, _ = await query_orders(db, target, source="http", session_id=current.id)
        return Reply(document, media_type="application/xml; charset=utf-8")
    if exchange_type == "sale" and mode == "success":
        await acknowledge(db, target, session_id=current.id)
        return text("success")
    return failure(f"mode {mode!r} is not supported for type={exchange_type}.")


async def _checkauth(
    db: Database, target: Target, credentials: tuple[str, str] | None, exchange_type: str
) -> Reply:
    config = target.config
    ok = credentials is not None and (
        hmac.compare_digest(credentials[0].encode(), config.login.encode())
        & hmac.compare_digest(credentials[1].encode(), config.password.get_secret_value().encode())
    )
    if not ok:
        log.warning("commerceml_checkauth_refused", connector_id=str(target.connector_id))
        return failure(
            "Wrong login or password.",
            status=401,
            **{"WWW-Authenticate": 'Basic realm="tradeflow-commerceml"'},
        )
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.tenant_session(target.tenant_id) as session:
        repo = CommerceMLRepository(session, target.tenant_id)
        await repo.drop_expired_sessions(target.connector_id, now)
        repo.add(
            ExchangeSession(
                id=uuid7(),
                tenant_id=target.tenant_id,
                connector_id=target.connector_id,
                token_hash=_hash(token),
                exchange_type=exchange_type,
                created_at=now,
                expires_at=now + timedelta(minutes=config.session_minutes),
            )
        )
        await session.commit()
    return text("success", COOKIE, token)


def _xml_name(filename: str | None) -> str | Reply:
    """The XML file a `file`/`import` step names, or the reply that ends the step: a missing
    or unusable name fails; images and other attachments are answered `success` so 1C carries
    on, and not kept."""
    if not filename or len(filename) > 300 or "\x00" in filename:
        return failure("filename is missing or invalid.")
    if not filename.lower().endswith(".xml"):
        return text("success")
    return filename


async def _file(
    db: Database,
    target: Target,
    current: ExchangeSession,
    exchange_type: str,
    filename: str | None,
    body: bytes,
) -> Reply:
    name = _xml_name(filename)
    if isinstance(name, Reply):
        return name
    if exchange_type == "sale":
        # 1C's own changes to orders (statuses, payments it booked) are recorded, not applied:
        # Tradeflow is the system of record for its orders.
        async with db.tenant_session(target.tenant_id) as session:
            await audit(
                session,
                target,
                session_id=current.id,
                exchange_type="sale",
                mode="file",
                source="http",
                status="success",
                filename=name,
                data=body,
                counts={"applied": 0},
            )
            await session.commit()
        return text("success")
    async with db.tenant_session(target.tenant_id) as session:
        repo = CommerceMLRepository(session, target.tenant_id)
        size, chunks = await repo.upload_size(current.id, name)
        if size + len(body) > target.config.max_file_bytes:
            await repo.drop_uploads(current.id, name)
            await audit(
                session,
                target,
                session_id=current.id,
                exchange_type="catalog",
                mode="file",
                source="http",
                status="failure",
                filename=name,
                error=f"{name} exceeds {target.config.max_file_bytes} bytes",
            )
            await session.commit()
            return failure(f"{name} is larger than {target.config.max_file_bytes} bytes.")
        repo.add(
            Upload(
                id=uuid7(),
                tenant_id=target.tenant_id,
                session_id=current.id,
                filename=name,
                seq=chunks,
                data=body,
                created_at=utcnow(),
            )
        )
        await session.commit()
    return text("success")


async def _import(
    db: Database, target: Target, current: ExchangeSession, filename: str | None
) -> Reply:
    name = _xml_name(filename)
    if isinstance(name, Reply):
        return name
    async with db.tenant_session(target.tenant_id) as session:
        data = await CommerceMLRepository(session, target.tenant_id).upload_data(current.id, name)
        await session.commit()
    if data is None:
        return failure(f"{name} was not uploaded in this session (mode=file first).")
    async with db.tenant_session(target.tenant_id) as session:
        running = await CommerceMLRepository(session, target.tenant_id).running_import(
            target.connector_id, current.id, name
        )
        await session.commit()
    row = await run_import(
        db,
        target,
        data,
        filename=name,
        source="http",
        session_id=current.id,
        step_rows=target.config.rows_per_step,
        resume=running.id if running is not None else None,
    )
    if row.status == "running":
        # 1C calls `mode=import` for the same file again until it hears `success`.
        return text("progress", f"{name}: {row.position} rows applied")
    if row.status != "success":
        return failure(row.error or "import failed")
    return text("success")
