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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.connectors.commerceml import cml, export
from tradeflow.connectors.commerceml.connector import CommerceMLConfig
from tradeflow.connectors.commerceml.importer import MAX_PROBLEMS, CatalogImport
from tradeflow.connectors.commerceml.models import Exchange, ExchangeSession, Upload
from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.db import Database
from tradeflow.integrations import external_ids
from tradeflow.integrations import service as integrations
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

KIND = "commerceml"
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


@dataclass(frozen=True, slots=True)
class Target:
    connector_id: uuid.UUID
    tenant_id: uuid.UUID
    config: CommerceMLConfig


async def resolve(db: Database, keyring: Keyring, connector_id: uuid.UUID) -> Target | None:
    """The instance and its decrypted config, or None (unknown, another kind, disabled)."""
    async with db.system_session() as s:
        ref = await external_ids.instance_for_inbound(s, connector_id)
        await s.commit()
    if ref is None or ref.kind != KIND or not ref.enabled:
        return None
    async with db.tenant_session(ref.tenant_id) as session:
        instance = await integrations.get_instance(session, ref.tenant_id, connector_id)
        plugin = integrations.open_plugin(instance, keyring)
        await session.commit()
    assert isinstance(plugin.config, CommerceMLConfig)
    return Target(connector_id, ref.tenant_id, plugin.config)


async def _audit(
    session: AsyncSession,
    target: Target,
    *,
    session_id: uuid.UUID | None,
    exchange_type: str,
    mode: str,
    source: str,
    status: str,
    filename: str | None = None,
    data: bytes | None = None,
    counts: dict[str, int] | None = None,
    problems: list[dict[str, Any]] | None = None,
    orders: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> Exchange:
    now = utcnow()
    row = Exchange(
        id=uuid7(),
        tenant_id=target.tenant_id,
        connector_id=target.connector_id,
        session_id=session_id,
        exchange_type=exchange_type,
        mode=mode,
        source=source,
        filename=filename,
        size_bytes=len(data) if data is not None else 0,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        status=status,
        counts=counts or {},
        problems=problems or [],
        orders=orders or [],
        error=error,
        started_at=now,
        finished_at=now if status != "sent" else None,
    )
    session.add(row)
    await session.flush()
    return row


async def run_import(
    db: Database,
    target: Target,
    data: bytes,
    *,
    filename: str,
    source: str,
    session_id: uuid.UUID | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
    step_rows: int | None = None,
    resume: uuid.UUID | None = None,
) -> Exchange:
    """Apply a catalog/offers file, bad rows undone alone; a file that cannot be read changes
    nothing. With `step_rows`, one step of that many rows (its own transaction) is applied
    and the audit row stays `running` (continue with `resume`) until the last one; without,
    the whole file in one transaction. The audit row is written either way."""
    tenant_id = target.tenant_id
    error: str | None = None
    if len(data) > target.config.max_file_bytes:
        error = f"the file is {len(data)} bytes; the limit is {target.config.max_file_bytes}"
    else:
        try:
            parsed = cml.parse_catalog(data)
        except cml.MalformedFile as exc:
            error = str(exc)
    if error is None:
        try:
            async with db.tenant_session(tenant_id) as session:
                repo = CommerceMLRepository(session, tenant_id)
                row = await repo.exchange(resume) if resume is not None else None
                if row is None:
                    row = await _audit(
                        session,
                        target,
                        session_id=session_id,
                        exchange_type="catalog",
                        mode="import",
                        source=source,
                        status="running",
                        filename=filename,
                        data=data,
                    )
                total = len(parsed.products) + len(parsed.offers)
                start = row.position
                stop = total if step_rows is None else min(total, start + step_rows)
                result = await CatalogImport(
                    session,
                    tenant_id,
                    target.connector_id,
                    target.config,
                    on_row=progress(stop - start) if progress is not None else None,
                ).apply(parsed, start=start, stop=stop)
                counts = dict(row.counts)
                for name, value in result.counts.items():
                    counts[name] = counts.get(name, 0) + value
                row.counts = counts
                row.problems = (
                    row.problems + [{"id": p.id, "reason": p.reason} for p in result.problems]
                )[:MAX_PROBLEMS]
                row.position = stop
                if stop >= total:
                    row.status = "success"
                    row.finished_at = utcnow()
                    if session_id is not None:
                        await repo.drop_uploads(session_id, filename)
                await session.commit()
            log.info(
                "commerceml_import",
                connector_id=str(target.connector_id),
                filename=filename,
                rows=f"{start}:{stop} of {total}",
                counts=dict(result.counts),
            )
            return row
        except Exception as exc:  # anything unforeseen: nothing of this step stays written
            log.exception("commerceml_import_crashed", connector_id=str(target.connector_id))
            error = f"import failed: {type(exc).__name__}"
    log.warning(
        "commerceml_import_failed",
        connector_id=str(target.connector_id),
        filename=filename,
        error=error,
    )
    async with db.tenant_session(tenant_id) as session:
        repo = CommerceMLRepository(session, tenant_id)
        failed = await repo.exchange(resume) if resume is not None else None
        if failed is None:
            failed = await _audit(
                session,
                target,
                session_id=session_id,
                exchange_type="catalog",
                mode="import",
                source=source,
                status="failure",
                filename=filename,
                data=data,
                error=error,
            )
        failed.status, failed.error, failed.finished_at = "failure", error, utcnow()
        if session_id is not None:
            await repo.drop_uploads(session_id, filename)
        await session.commit()
    return failed


async def query_orders(
    db: Database, target: Target, *, source: str, session_id: uuid.UUID | None
) -> tuple[bytes, Exchange]:
    """The orders 1C has not acknowledged, as one document; recorded as `sent`."""
    async with db.tenant_session(target.tenant_id) as session:
        document = await export.build(
            session,
            target.tenant_id,
            target.connector_id,
            statuses=target.config.export_statuses,
            limit=target.config.orders_per_query,
            now=utcnow(),
        )
        row = await _audit(
            session,
            target,
            session_id=session_id,
            exchange_type="sale",
            mode="query",
            source=source,
            status="sent",
            data=document.body,
            counts={"orders": len(document.sent)},
            orders=[{"order_id": str(o), "version": v} for o, v in document.sent],
        )
        await session.commit()
    return document.body, row


async def acknowledge(
    db: Database, target: Target, *, session_id: uuid.UUID | None
) -> Exchange | None:
    """`mode=success`: the last order query (of this session) reached 1C."""
    async with db.tenant_session(target.tenant_id) as session:
        repo = CommerceMLRepository(session, target.tenant_id)
        row = await repo.last_sent_query(target.connector_id, session_id)
        if row is not None:
            now = utcnow()
            await repo.acknowledge(
                target.connector_id,
                [(uuid.UUID(o["order_id"]), int(o["version"])) for o in row.orders],
                now,
            )
            row.status = "acknowledged"
            row.finished_at = now
        await session.commit()
    return row


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


def _clean_name(filename: str | None) -> str | None:
    if not filename or len(filename) > 300 or "\x00" in filename:
        return None
    return filename


async def _file(
    db: Database,
    target: Target,
    current: ExchangeSession,
    exchange_type: str,
    filename: str | None,
    body: bytes,
) -> Reply:
    name = _clean_name(filename)
    if name is None:
        return failure("filename is missing or invalid.")
    if not name.lower().endswith(".xml"):
        # Images and other attachments: accepted so 1C carries on, not kept.
        return text("success")
    if exchange_type == "sale":
        # 1C's own changes to orders (statuses, payments it booked) are recorded, not applied:
        # Tradeflow is the system of record for its orders.
        async with db.tenant_session(target.tenant_id) as session:
            await _audit(
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
            await _audit(
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
    name = _clean_name(filename)
    if name is None:
        return failure("filename is missing or invalid.")
    if not name.lower().endswith(".xml"):
        return text("success")
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
