"""Every query of the integrations context. Tenant scoping is RLS plus the explicit filter here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.integrations.models import (
    ConnectorInstance,
    ConnectorPull,
    ExternalRef,
    ReconciliationMismatch,
    ReconciliationRun,
    SyncConflict,
)
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow


class IntegrationsRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    # -- connector instances ------------------------------------------------------------------
    def instances_query(self) -> Select[ConnectorInstance]:
        return select(ConnectorInstance).where(ConnectorInstance.tenant_id == self.tenant_id)

    async def instance(
        self, instance_id: uuid.UUID, *, lock: bool = False
    ) -> ConnectorInstance | None:
        stmt = self.instances_query().where(ConnectorInstance.id == instance_id)
        if lock:
            stmt = stmt.with_for_update()
        found: ConnectorInstance | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def instance_by_name(self, name: str) -> ConnectorInstance | None:
        stmt = self.instances_query().where(ConnectorInstance.name == name)
        found: ConnectorInstance | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def instance_by_subscriber(self, subscriber_id: uuid.UUID) -> ConnectorInstance | None:
        stmt = self.instances_query().where(ConnectorInstance.subscriber_id == subscriber_id)
        found: ConnectorInstance | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def enabled_instances(self) -> Sequence[ConnectorInstance]:
        stmt = (
            self.instances_query().where(ConnectorInstance.enabled).order_by(ConnectorInstance.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    def add(self, row: object) -> None:
        self.session.add(row)

    async def record_result(
        self, instance_id: uuid.UUID, *, error: str | None, at: datetime
    ) -> None:
        # Sync results are not configuration changes: `updated_at` stays as it is.
        values: dict[str, Any] = {"updated_at": ConnectorInstance.updated_at}
        if error is None:
            values |= {"last_success_at": at, "consecutive_failures": 0}
        else:
            values |= {
                "last_error": error[:2000],
                "last_error_at": at,
                "consecutive_failures": ConnectorInstance.consecutive_failures + 1,
            }
        await self.session.execute(
            update(ConnectorInstance)
            .where(
                ConnectorInstance.tenant_id == self.tenant_id, ConnectorInstance.id == instance_id
            )
            .values(**values)
        )

    # -- external refs -----------------------------------------------------------------------------
    async def lease_ref(
        self,
        connector_id: uuid.UUID,
        object_type: str,
        our_id: str,
        *,
        lease_seconds: float,
    ) -> tuple[ExternalRef, uuid.UUID] | None:
        """Take the document's sync lease (creating its row); None while another sync holds it."""
        await self.session.execute(
            insert(ExternalRef)
            .values(
                id=uuid7(),
                tenant_id=self.tenant_id,
                connector_id=connector_id,
                object_type=object_type,
                our_id=our_id,
                state="pending",
                attempts=0,
            )
            .on_conflict_do_nothing(constraint="uq_external_refs_connector_object")
        )
        ref = (
            await self.session.execute(
                select(ExternalRef)
                .where(
                    ExternalRef.tenant_id == self.tenant_id,
                    ExternalRef.connector_id == connector_id,
                    ExternalRef.object_type == object_type,
                    ExternalRef.our_id == our_id,
                )
                .with_for_update()
            )
        ).scalar_one()
        now = utcnow()
        if ref.lease_until is not None and ref.lease_until > now:
            return None
        token = uuid.uuid4()
        ref.lease_until = now + timedelta(seconds=lease_seconds)
        ref.lease_token = token
        ref.attempts += 1
        return ref, token

    async def ref(
        self, connector_id: uuid.UUID, object_type: str, our_id: str
    ) -> ExternalRef | None:
        stmt = select(ExternalRef).where(
            ExternalRef.tenant_id == self.tenant_id,
            ExternalRef.connector_id == connector_id,
            ExternalRef.object_type == object_type,
            ExternalRef.our_id == our_id,
        )
        found: ExternalRef | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def ref_fenced(self, ref_id: uuid.UUID, token: uuid.UUID) -> ExternalRef | None:
        """The ref if our lease still holds it (locked); None when the lease was taken over."""
        stmt = (
            select(ExternalRef)
            .where(
                ExternalRef.tenant_id == self.tenant_id,
                ExternalRef.id == ref_id,
                ExternalRef.lease_token == token,
            )
            .with_for_update()
        )
        found: ExternalRef | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def ref_by_external(
        self, connector_id: uuid.UUID, object_type: str, external_id: str, *, lock: bool = False
    ) -> ExternalRef | None:
        stmt = select(ExternalRef).where(
            ExternalRef.tenant_id == self.tenant_id,
            ExternalRef.connector_id == connector_id,
            ExternalRef.object_type == object_type,
            ExternalRef.external_id == external_id,
        )
        if lock:
            stmt = stmt.with_for_update()
        found: ExternalRef | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    def refs_query(self, connector_id: uuid.UUID) -> Select[ExternalRef]:
        return select(ExternalRef).where(
            ExternalRef.tenant_id == self.tenant_id, ExternalRef.connector_id == connector_id
        )

    async def refs_of(self, connector_id: uuid.UUID, object_type: str) -> Sequence[ExternalRef]:
        stmt = select(ExternalRef).where(
            ExternalRef.tenant_id == self.tenant_id,
            ExternalRef.connector_id == connector_id,
            ExternalRef.object_type == object_type,
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def ref_counts(self, connector_id: uuid.UUID) -> dict[str, int]:
        rows = await self.session.execute(
            select(ExternalRef.state, func.count())
            .where(
                ExternalRef.tenant_id == self.tenant_id, ExternalRef.connector_id == connector_id
            )
            .group_by(ExternalRef.state)
        )
        return {state: int(n) for state, n in rows.all()}

    async def oldest_unsynced(self, connector_id: uuid.UUID) -> datetime | None:
        value: datetime | None = (
            await self.session.execute(
                select(func.min(ExternalRef.created_at)).where(
                    ExternalRef.tenant_id == self.tenant_id,
                    ExternalRef.connector_id == connector_id,
                    ExternalRef.state != "synced",
                )
            )
        ).scalar_one()
        return value

    # -- pulls ---------------------------------------------------------------------------------
    async def pull_state(
        self, connector_id: uuid.UUID, *, lock: bool = False
    ) -> ConnectorPull | None:
        stmt = select(ConnectorPull).where(
            ConnectorPull.tenant_id == self.tenant_id, ConnectorPull.connector_id == connector_id
        )
        if lock:
            stmt = stmt.with_for_update()
        found: ConnectorPull | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def pull_state_for_update(self, connector_id: uuid.UUID) -> ConnectorPull:
        """The instance's pull row, created on first use, locked."""
        await self.session.execute(
            insert(ConnectorPull)
            .values(
                connector_id=connector_id,
                tenant_id=self.tenant_id,
                consecutive_failures=0,
                last_counts={},
                totals={},
                problems=[],
            )
            .on_conflict_do_nothing(index_elements=["connector_id"])
        )
        found = await self.pull_state(connector_id, lock=True)
        assert found is not None
        return found

    async def pull_fenced(self, connector_id: uuid.UUID, token: uuid.UUID) -> ConnectorPull | None:
        """The pull row if our run still holds its lease (locked)."""
        stmt = (
            select(ConnectorPull)
            .where(
                ConnectorPull.tenant_id == self.tenant_id,
                ConnectorPull.connector_id == connector_id,
                ConnectorPull.running_token == token,
            )
            .with_for_update()
        )
        found: ConnectorPull | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    # -- conflicts ---------------------------------------------------------------------------------
    def conflicts_query(self) -> Select[SyncConflict]:
        return select(SyncConflict).where(SyncConflict.tenant_id == self.tenant_id)

    async def conflict(self, conflict_id: uuid.UUID, *, lock: bool = False) -> SyncConflict | None:
        stmt = self.conflicts_query().where(SyncConflict.id == conflict_id)
        if lock:
            stmt = stmt.with_for_update()
        found: SyncConflict | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def open_conflict(self, ref_id: uuid.UUID) -> SyncConflict | None:
        stmt = self.conflicts_query().where(
            SyncConflict.ref_id == ref_id, SyncConflict.status != "resolved"
        )
        found: SyncConflict | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def open_conflict_count(self, connector_id: uuid.UUID) -> int:
        return int(
            (
                await self.session.execute(
                    select(func.count()).where(
                        SyncConflict.tenant_id == self.tenant_id,
                        SyncConflict.connector_id == connector_id,
                        SyncConflict.status != "resolved",
                    )
                )
            ).scalar_one()
        )

    # -- reconciliation ----------------------------------------------------------------------
    def runs_query(self) -> Select[ReconciliationRun]:
        return select(ReconciliationRun).where(ReconciliationRun.tenant_id == self.tenant_id)

    async def run(self, run_id: uuid.UUID) -> ReconciliationRun | None:
        stmt = self.runs_query().where(ReconciliationRun.id == run_id)
        found: ReconciliationRun | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    def mismatches_query(self, run_id: uuid.UUID) -> Select[ReconciliationMismatch]:
        return select(ReconciliationMismatch).where(
            ReconciliationMismatch.tenant_id == self.tenant_id,
            ReconciliationMismatch.run_id == run_id,
        )
