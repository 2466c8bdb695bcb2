"""Tenant B's integrations objects for the tenant-isolation walk (test_tenant_isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from tradeflow.integrations import runs, service
from tradeflow.integrations.models import ExternalRef, SyncConflict
from tradeflow.kit.ids import uuid7


async def _connector(ctx: Any) -> dict[str, str]:
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        instance = await service.create_instance(
            s,
            tenant,
            keyring=ctx.keyring,
            kind="rest_erp",
            name=f"erp-{uuid.uuid4().hex[:6]}",
            config={"base_url": "http://127.0.0.1:9/api", "token": "b-secret"},
            allow_private=True,
        )
        await s.commit()
    ctx.remember("integrations.connector", instance.id)
    return {"connector_id": str(instance.id)}


async def _conflict(ctx: Any) -> dict[str, str]:
    tenant = ctx.tenant_b.id
    connector_id = ctx.recalled("integrations.connector")
    if connector_id is None:
        connector_id = uuid.UUID((await _connector(ctx))["connector_id"])
    async with ctx.db.tenant_session(tenant) as s:
        ref = ExternalRef(
            id=uuid7(),
            tenant_id=tenant,
            connector_id=connector_id,
            object_type="invoice",
            our_id=str(uuid.uuid4()),
            external_id="INV-1",
            state="conflict",
            attempts=1,
        )
        s.add(ref)
        await s.flush()
        conflict = SyncConflict(
            id=uuid7(),
            tenant_id=tenant,
            connector_id=connector_id,
            ref_id=ref.id,
            object_type="invoice",
            our_id=ref.our_id,
            external_id="INV-1",
            remote_version="2",
            fields=[{"field": "status", "base": "issued", "ours": "paid", "theirs": "disputed"}],
            ours={"status": "paid"},
            theirs={"status": "disputed"},
            status="open",
        )
        s.add(conflict)
        await s.commit()
    ctx.remember("integrations.conflict", conflict.id)
    return {"conflict_id": str(conflict.id)}


async def _reconciliation(ctx: Any) -> dict[str, str]:
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        run = await runs.queue_run(s, tenant, trigger="manual", grace_seconds=0)
        await s.commit()
    return {"reconciliation_id": str(run.id)}


FACTORIES = {
    "connector_id": _connector,
    "conflict_id": _conflict,
    "reconciliation_id": _reconciliation,
}

BODIES: dict[str, Any] = {
    "POST /v1/sync-conflicts/{conflict_id}/resolve": {"resolution": "ours"},
    "POST /v1/connectors/{connector_id}/replay": {"since": "2020-01-01T00:00:00Z"},
    "PATCH /v1/connectors/{connector_id}": {"enabled": False},
}


async def check_untouched(ctx: Any, client: Any) -> None:
    """B's conflict is still open and B's connector still enabled and unpaused."""
    conflict_id = ctx.recalled("integrations.conflict")
    connector_id = ctx.recalled("integrations.connector")
    async with ctx.db.tenant_session(ctx.tenant_b.id) as s:
        if conflict_id is not None:
            found = (
                await s.execute(select(SyncConflict).where(SyncConflict.id == conflict_id))
            ).scalar_one()
            assert found.status == "open", "A resolved B's conflict"
        if connector_id is not None:
            instance = await service.get_instance(s, ctx.tenant_b.id, connector_id)
            assert instance.enabled, "A disabled B's connector"
            assert not instance.paused, "A paused B's connector"
        await s.commit()
