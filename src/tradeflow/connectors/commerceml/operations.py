"""The CommerceML use cases shared by 1C's HTTP exchange and the CLI: resolving an instance,
importing a file (whole, or one step of it), the order query and its acknowledgement — each
recorded in the exchange audit (`commerceml_exchanges`)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.connectors.commerceml import cml, export
from tradeflow.connectors.commerceml.connector import CommerceMLConfig
from tradeflow.connectors.commerceml.importer import MAX_PROBLEMS, CatalogImport
from tradeflow.connectors.commerceml.models import Exchange
from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.db import Database
from tradeflow.integrations import external_ids
from tradeflow.integrations import service as integrations
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

KIND = "commerceml"


@dataclass(frozen=True, slots=True)
class Target:
    connector_id: uuid.UUID
    tenant_id: uuid.UUID
    config: CommerceMLConfig
    paused: bool = False


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
    return Target(connector_id, ref.tenant_id, plugin.config, paused=ref.paused)


async def audit(
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
    """Add the audit row of one exchange step (flushed, not committed)."""
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

    async def audit_row(
        session: AsyncSession, repo: CommerceMLRepository, status: str, reason: str | None = None
    ) -> Exchange:
        """This import's audit row: the one its first step wrote (`resume`), else a new one."""
        row = await repo.exchange(resume) if resume is not None else None
        if row is None:
            row = await audit(
                session,
                target,
                session_id=session_id,
                exchange_type="catalog",
                mode="import",
                source=source,
                status=status,
                filename=filename,
                data=data,
                error=reason,
            )
        return row

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
                row = await audit_row(session, repo, "running")
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
        failed = await audit_row(session, repo, "failure", error)
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
        row = await audit(
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
