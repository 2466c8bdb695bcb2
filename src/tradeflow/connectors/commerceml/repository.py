"""Every query of the CommerceML exchange's own tables (tenant-scoped here and by RLS)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.connectors.commerceml.models import (
    Exchange,
    ExchangeSession,
    OrderAck,
    OrderChange,
    Upload,
)


class CommerceMLRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def add(self, row: object) -> None:
        self.session.add(row)

    # -- sessions ---------------------------------------------------------------------------------
    async def session_by_hash(
        self, connector_id: uuid.UUID, token_hash: str
    ) -> ExchangeSession | None:
        stmt = select(ExchangeSession).where(
            ExchangeSession.tenant_id == self.tenant_id,
            ExchangeSession.connector_id == connector_id,
            ExchangeSession.token_hash == token_hash,
        )
        found: ExchangeSession | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def drop_expired_sessions(self, connector_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(ExchangeSession).where(
                ExchangeSession.tenant_id == self.tenant_id,
                ExchangeSession.connector_id == connector_id,
                ExchangeSession.expires_at < now,
            )
        )

    # -- uploads ----------------------------------------------------------------------------------
    async def upload_size(self, session_id: uuid.UUID, filename: str) -> tuple[int, int]:
        """(bytes so far, chunks so far) of a file being uploaded in this session."""
        row = (
            await self.session.execute(
                select(func.coalesce(func.sum(func.length(Upload.data)), 0), func.count()).where(
                    Upload.tenant_id == self.tenant_id,
                    Upload.session_id == session_id,
                    Upload.filename == filename,
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def upload_data(self, session_id: uuid.UUID, filename: str) -> bytes | None:
        rows = await self.session.execute(
            select(Upload.data)
            .where(
                Upload.tenant_id == self.tenant_id,
                Upload.session_id == session_id,
                Upload.filename == filename,
            )
            .order_by(Upload.seq)
        )
        chunks = list(rows.scalars())
        return b"".join(chunks) if chunks else None

    async def drop_uploads(self, session_id: uuid.UUID, filename: str | None = None) -> None:
        stmt = delete(Upload).where(
            Upload.tenant_id == self.tenant_id, Upload.session_id == session_id
        )
        if filename is not None:
            stmt = stmt.where(Upload.filename == filename)
        await self.session.execute(stmt)

    # -- exchanges (audit) ----------------------------------------------------------------------
    def exchanges_query(self, connector_id: uuid.UUID) -> Select[Exchange]:
        return select(Exchange).where(
            Exchange.tenant_id == self.tenant_id, Exchange.connector_id == connector_id
        )

    async def exchange(self, exchange_id: uuid.UUID) -> Exchange | None:
        stmt = select(Exchange).where(
            Exchange.tenant_id == self.tenant_id, Exchange.id == exchange_id
        )
        found: Exchange | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def running_import(
        self, connector_id: uuid.UUID, session_id: uuid.UUID, filename: str
    ) -> Exchange | None:
        """The import of `filename` in this session that answered `progress`, if any."""
        stmt = (
            self.exchanges_query(connector_id)
            .where(
                Exchange.session_id == session_id,
                Exchange.filename == filename,
                Exchange.mode == "import",
                Exchange.status == "running",
            )
            .order_by(Exchange.id.desc())
            .limit(1)
        )
        found: Exchange | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def last_sent_query(
        self, connector_id: uuid.UUID, session_id: uuid.UUID | None
    ) -> Exchange | None:
        """The latest order query not yet acknowledged (of this session when one is given)."""
        stmt = self.exchanges_query(connector_id).where(
            Exchange.mode == "query", Exchange.status == "sent"
        )
        if session_id is not None:
            stmt = stmt.where(Exchange.session_id == session_id)
        stmt = stmt.order_by(Exchange.id.desc()).limit(1).with_for_update()
        found: Exchange | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    # -- order changes --------------------------------------------------------------------------
    async def note_order_change(
        self, order_id: uuid.UUID, version: int, status: str, at: datetime
    ) -> None:
        stmt = insert(OrderChange).values(
            tenant_id=self.tenant_id,
            order_id=order_id,
            version=version,
            status=status,
            changed_at=at,
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[OrderChange.tenant_id, OrderChange.order_id],
                set_={
                    "version": stmt.excluded.version,
                    "status": stmt.excluded.status,
                    "changed_at": stmt.excluded.changed_at,
                },
                # Events of one order may be handled out of order: keep the newest.
                where=OrderChange.version < stmt.excluded.version,
            )
        )

    async def has_order_change(self, order_id: uuid.UUID) -> bool:
        stmt = select(OrderChange.order_id).where(
            OrderChange.tenant_id == self.tenant_id, OrderChange.order_id == order_id
        )
        return (await self.session.execute(stmt)).first() is not None

    async def unacknowledged(
        self, connector_id: uuid.UUID, statuses: Sequence[str], limit: int
    ) -> list[tuple[uuid.UUID, int]]:
        """(order id, version) of changes this instance's 1C has not acknowledged, oldest first."""
        stmt = (
            select(OrderChange.order_id, OrderChange.version)
            .outerjoin(
                OrderAck,
                and_(
                    OrderAck.connector_id == connector_id,
                    OrderAck.order_id == OrderChange.order_id,
                ),
            )
            .where(
                OrderChange.tenant_id == self.tenant_id,
                OrderChange.status.in_(list(statuses)),
                or_(OrderAck.order_id.is_(None), OrderAck.version < OrderChange.version),
            )
            .order_by(OrderChange.changed_at, OrderChange.order_id)
            .limit(limit)
        )
        return [(r[0], int(r[1])) for r in (await self.session.execute(stmt)).all()]

    async def acknowledge(
        self, connector_id: uuid.UUID, sent: Sequence[tuple[uuid.UUID, int]], at: datetime
    ) -> None:
        for order_id, version in sent:
            stmt = insert(OrderAck).values(
                tenant_id=self.tenant_id,
                connector_id=connector_id,
                order_id=order_id,
                version=version,
                acked_at=at,
            )
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[OrderAck.connector_id, OrderAck.order_id],
                    set_={"version": stmt.excluded.version, "acked_at": stmt.excluded.acked_at},
                    where=OrderAck.version < stmt.excluded.version,
                )
            )
