"""The external-id map and instance look-up for connectors the remote system calls *into*.

Most connectors push (the sync engine owns their map rows, with leases). Some
remotes are clients of ours instead — 1C:Enterprise polls a web shop over the
CommerceML exchange — so their connector reads and writes the map directly,
inside the request's transaction, through these functions (a connector never
touches the integrations tables itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.integrations.models import ConnectorInstance, ExternalRef
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """Who a connector instance belongs to, for credential resolution."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    name: str
    enabled: bool
    paused: bool


async def instance_for_inbound(
    system_session: AsyncSession, instance_id: uuid.UUID
) -> InstanceRef | None:
    """The instance with this id in any tenant (a system session: the caller has no tenant
    yet, it is authenticating against the instance's own credentials)."""
    row = (
        await system_session.execute(
            select(ConnectorInstance).where(ConnectorInstance.id == instance_id)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return InstanceRef(row.id, row.tenant_id, row.kind, row.name, row.enabled, row.paused)


@dataclass(frozen=True, slots=True)
class Link:
    """One row of the map: our id ↔ their id, and what each side held at the last exchange."""

    object_type: str
    our_id: str
    external_id: str
    last_ours: dict[str, Any]
    last_theirs: dict[str, Any]


def _link(row: ExternalRef) -> Link:
    return Link(
        row.object_type,
        row.our_id,
        row.external_id or "",
        dict(row.last_ours or {}),
        dict(row.last_theirs or {}),
    )


async def links_by_external(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    object_type: str,
    external_ids: Sequence[str],
) -> dict[str, Link]:
    """Their id → link, for those of `external_ids` that are mapped."""
    return await _links(session, tenant_id, connector_id, object_type, "external_id", external_ids)


async def links_by_ours(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    object_type: str,
    our_ids: Sequence[str],
) -> dict[str, Link]:
    """Our id → link, for those of `our_ids` that are mapped."""
    return await _links(session, tenant_id, connector_id, object_type, "our_id", our_ids)


async def _links(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    object_type: str,
    key: Literal["external_id", "our_id"],
    ids: Sequence[str],
) -> dict[str, Link]:
    """The mapped links among `ids` (values of the `key` side), keyed by that side."""
    if not ids:
        return {}
    column = ExternalRef.external_id if key == "external_id" else ExternalRef.our_id
    rows = await session.execute(
        select(ExternalRef).where(
            ExternalRef.tenant_id == tenant_id,
            ExternalRef.connector_id == connector_id,
            ExternalRef.object_type == object_type,
            column.in_(sorted(set(ids))),
        )
    )
    links = [_link(r) for r in rows.scalars() if r.external_id is not None]
    if key == "external_id":
        return {link.external_id: link for link in links}
    return {link.our_id: link for link in links}


async def record_link(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    object_type: str,
    *,
    our_id: str,
    external_id: str,
    ours: dict[str, Any],
    theirs: dict[str, Any],
) -> bool:
    """Create or refresh the link (state `synced`), in one statement; False when nothing
    about it changed."""
    now = utcnow()
    stmt = insert(ExternalRef).values(
        id=uuid7(),
        tenant_id=tenant_id,
        connector_id=connector_id,
        object_type=object_type,
        our_id=our_id,
        external_id=external_id,
        state="synced",
        last_ours=ours,
        last_theirs=theirs,
        attempts=1,
        synced_at=now,
        created_at=now,
        updated_at=now,
    )
    excluded = stmt.excluded
    changed = await session.execute(
        stmt.on_conflict_do_update(
            constraint="uq_external_refs_connector_object",
            set_={
                "external_id": excluded.external_id,
                "last_ours": excluded.last_ours,
                "last_theirs": excluded.last_theirs,
                "state": excluded.state,
                "synced_at": excluded.synced_at,
                "updated_at": excluded.updated_at,
            },
            where=or_(
                ExternalRef.external_id.is_distinct_from(excluded.external_id),
                ExternalRef.last_ours.is_distinct_from(excluded.last_ours),
                ExternalRef.last_theirs.is_distinct_from(excluded.last_theirs),
                ExternalRef.state != "synced",
            ),
        ).returning(ExternalRef.id)
    )
    return changed.first() is not None


async def tenant_has_kind(session: AsyncSession, tenant_id: uuid.UUID, kind: str) -> bool:
    """Whether the tenant has a connector instance of this kind (enabled or not: a disabled
    one that is enabled again must not have missed what happened meanwhile)."""
    found = (
        await session.execute(
            select(ConnectorInstance.id)
            .where(ConnectorInstance.tenant_id == tenant_id, ConnectorInstance.kind == kind)
            .limit(1)
        )
    ).first()
    return found is not None


async def instance_id_by_name(
    session: AsyncSession, tenant_id: uuid.UUID, name: str
) -> uuid.UUID | None:
    """The id of the tenant's connector instance with this name (operator commands)."""
    found: uuid.UUID | None = (
        await session.execute(
            select(ConnectorInstance.id).where(
                ConnectorInstance.tenant_id == tenant_id, ConnectorInstance.name == name
            )
        )
    ).scalar_one_or_none()
    return found
