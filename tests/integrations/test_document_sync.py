"""Pushing documents to the fake ERP: idempotent upserts, reconcile before retry, ownership,
conflicts — the sync engine against a real HTTP service with its own storage."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from integrations.fake_erp.server import FakeErp
from integrations.support import erp_config, make_connector
from tradeflow.db import Database
from tradeflow.integrations import service
from tradeflow.integrations.models import ExternalRef, SyncConflict
from tradeflow.integrations.plugins import (
    DocumentConnector,
    ObjectType,
    RateLimited,
    RemoteTimeout,
    RemoteUnavailable,
)
from tradeflow.integrations.sync import DocumentSync, Settling
from tradeflow.kit.keyring import Keyring


def invoice_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "id": str(uuid.uuid4()),
        "number": "INV-2026-000001",
        "customer_external_id": "CUST-1",
        "currency": "EUR",
        "total": "119.00",
        "amount_paid": "0.00",
        "status": "issued",
        "due_date": "2026-12-21",
    }
    doc.update(changes)
    return doc


@pytest.fixture
async def sync(committed: Database, tenant: uuid.UUID, keyring: Keyring, calm_erp: FakeErp) -> Any:
    instance = await make_connector(
        committed, tenant, keyring, kind="rest_erp", config=erp_config(calm_erp)
    )
    plugin = service.open_plugin(instance, keyring)
    await plugin.open()
    assert isinstance(plugin, DocumentConnector)
    try:
        yield DocumentSync(
            db=committed,
            tenant_id=tenant,
            connector_id=instance.id,
            connector=plugin,
            lease_seconds=30,
        )
    finally:
        await plugin.close()


def records(erp: FakeErp, reference: str, collection: str = "invoices") -> list[dict[str, Any]]:
    return [r for r in erp.dump(collection) if r.get("reference") == reference]


async def ref_of(db: Database, tenant: uuid.UUID, our_id: str) -> ExternalRef:
    async with db.tenant_session(tenant) as s:
        row = (
            await s.execute(select(ExternalRef).where(ExternalRef.our_id == our_id))
        ).scalar_one()
        await s.commit()
    return row


async def test_create_then_repeat_is_one_record(sync: DocumentSync, calm_erp: FakeErp) -> None:
    doc = invoice_doc()
    first = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    again = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    assert first.action == "created"
    assert again.action == "unchanged"
    assert again.external_id == first.external_id
    [record] = records(calm_erp, doc["id"])
    assert record["total"] == "119.00"
    assert record["number"] == "INV-2026-000001"


async def test_a_timeout_after_the_remote_committed_is_linked_not_duplicated(
    sync: DocumentSync, calm_erp: FakeErp, committed: Database, tenant: uuid.UUID
) -> None:
    doc = invoice_doc()
    calm_erp.control(timeout_rate=1.0, hang_seconds=3.0)
    with pytest.raises(RemoteTimeout):
        await sync.push(ObjectType.INVOICE, doc["id"], doc)
    assert len(records(calm_erp, doc["id"])) == 1  # the ERP did commit it
    ref = await ref_of(committed, tenant, doc["id"])
    assert ref.external_id is None
    assert ref.pending is not None
    assert ref.lease_until is None
    calm_erp.calm()
    # The ERP might still be processing the unanswered create: no look-up until it settled.
    with pytest.raises(Settling) as settling:
        await sync.push(ObjectType.INVOICE, doc["id"], doc)
    assert 0 < (settling.value.retry_after or 0) <= 2.0
    sync.max_settle_wait = 2.0  # as the transport does: wait in place when it is short
    result = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    assert result.action == "linked"
    assert len(records(calm_erp, doc["id"])) == 1
    ref = await ref_of(committed, tenant, doc["id"])
    assert ref.external_id == result.external_id
    assert ref.state == "synced"
    assert ref.pending is None


async def test_server_errors_and_rate_limits_leave_no_trace_and_retry_cleanly(
    sync: DocumentSync, calm_erp: FakeErp
) -> None:
    doc = invoice_doc()
    calm_erp.control(error_rate=1.0)
    with pytest.raises(RemoteUnavailable):
        await sync.push(ObjectType.INVOICE, doc["id"], doc)
    calm_erp.control(error_rate=0.0, rate_limit_rate=1.0, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await sync.push(ObjectType.INVOICE, doc["id"], doc)
    assert limited.value.retry_after == 7
    calm_erp.calm()
    assert (await sync.push(ObjectType.INVOICE, doc["id"], doc)).action == "created"
    assert len(records(calm_erp, doc["id"])) == 1


async def test_their_edit_of_a_shared_field_stands_and_ours_of_an_owned_field_is_written(
    sync: DocumentSync, calm_erp: FakeErp
) -> None:
    doc = invoice_doc()
    created = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    calm_erp.user_edit("invoices", created.external_id, status="on hold", total="1.00")
    paid = {**doc, "amount_paid": "119.00"}
    result = await sync.push(ObjectType.INVOICE, doc["id"], paid)
    assert result.action == "updated"
    assert result.conflicts == 0
    [record] = records(calm_erp, doc["id"])
    assert record["status"] == "on hold"  # shared, only they changed it: theirs
    assert record["total"] == "119.00"  # ours: written back over their edit
    assert record["amount_paid"] == "119.00"


async def test_both_sides_changing_a_shared_field_queues_a_conflict_resolved_by_taking_ours(
    sync: DocumentSync, calm_erp: FakeErp, committed: Database, tenant: uuid.UUID
) -> None:
    doc = invoice_doc()
    created = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    calm_erp.user_edit("invoices", created.external_id, status="disputed")
    result = await sync.push(ObjectType.INVOICE, doc["id"], {**doc, "status": "paid"})
    assert result.conflicts == 1
    [record] = records(calm_erp, doc["id"])
    assert record["status"] == "disputed"  # not overwritten
    async with committed.tenant_session(tenant) as s:
        conflict = (await s.execute(select(SyncConflict))).scalar_one()
        events = (
            await s.execute(select(SyncConflict.id).where(SyncConflict.status == "open"))
        ).all()
        await s.commit()
    assert len(events) == 1
    assert conflict.fields == [
        {"field": "status", "base": "issued", "ours": "paid", "theirs": "disputed"}
    ]
    # A further sync neither duplicates the conflict nor touches the held field.
    again = await sync.push(ObjectType.INVOICE, doc["id"], {**doc, "status": "paid"})
    assert again.action == "unchanged"
    assert records(calm_erp, doc["id"])[0]["status"] == "disputed"

    async with committed.tenant_session(tenant) as s:
        await service.resolve_conflict(
            s, tenant, conflict.id, resolution="ours", values=None, actor="test"
        )
        await s.commit()
    assert await sync.apply_resolution(conflict.id) == "applied ours"
    assert records(calm_erp, doc["id"])[0]["status"] == "paid"
    async with committed.tenant_session(tenant) as s:
        resolved = (await s.execute(select(SyncConflict))).scalar_one()
        await s.commit()
    assert resolved.status == "resolved"
    assert resolved.resolution == "ours"
    ref = await ref_of(committed, tenant, doc["id"])
    assert ref.state == "synced"
    # Resolved means agreed: the next sync with the same document changes nothing.
    assert (await sync.push(ObjectType.INVOICE, doc["id"], {**doc, "status": "paid"})).action == (
        "unchanged"
    )


async def test_a_conflict_is_resolved_through_the_api_and_applied_by_the_worker(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, fast_settings: Any
) -> None:
    import sys
    from pathlib import Path

    from httpx import ASGITransport, AsyncClient

    from integrations.support import eventually, running_worker
    from tradeflow.app import create_app

    sys.path.insert(0, str(Path(__file__).parents[1] / "identity"))
    from identity_factories import make_api_key, make_tenant

    tenant = await make_tenant(committed)
    _, token = await make_api_key(committed, tenant)
    headers = {"Authorization": f"Bearer {token}"}
    instance = await make_connector(
        committed, tenant.id, keyring, kind="rest_erp", config=erp_config(calm_erp)
    )
    plugin = service.open_plugin(instance, keyring)
    assert isinstance(plugin, DocumentConnector)
    sync = DocumentSync(committed, tenant.id, instance.id, plugin)
    doc = invoice_doc()
    created = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    calm_erp.user_edit("invoices", created.external_id, status="disputed")
    await sync.push(ObjectType.INVOICE, doc["id"], {**doc, "status": "paid"})
    await plugin.close()

    app = create_app(fast_settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        listed = (await client.get("/v1/sync-conflicts?status=open", headers=headers)).json()[
            "items"
        ]
        assert len(listed) == 1
        conflict = listed[0]
        assert conflict["object_id"] == doc["id"]
        assert conflict["fields"] == [
            {"field": "status", "base": "issued", "ours": "paid", "theirs": "disputed"}
        ]
        state = (await client.get(f"/v1/connectors/{instance.id}", headers=headers)).json()
        assert state["status"]["state"] == "degraded"
        assert state["status"]["open_conflicts"] == 1
        bad = await client.post(
            f"/v1/sync-conflicts/{conflict['id']}/resolve",
            json={"resolution": "merge", "values": {"total": "1.00"}},
            headers=headers,
        )
        assert bad.status_code == 422
        r = await client.post(
            f"/v1/sync-conflicts/{conflict['id']}/resolve",
            json={"resolution": "merge", "values": {"status": "paid (was disputed)"}},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "resolving"
        again = await client.post(
            f"/v1/sync-conflicts/{conflict['id']}/resolve",
            json={"resolution": "ours"},
            headers=headers,
        )
        assert again.status_code == 409

        async def applied() -> bool:
            got = await client.get(f"/v1/sync-conflicts/{conflict['id']}", headers=headers)
            return bool(got.json()["status"] == "resolved")

        async with running_worker(fast_settings, committed, keyring):
            await eventually(applied, timeout=30)
        [record] = records(calm_erp, doc["id"])
        assert record["status"] == "paid (was disputed)"
        state = (await client.get(f"/v1/connectors/{instance.id}", headers=headers)).json()
        assert state["status"]["open_conflicts"] == 0


async def test_their_edit_of_a_shared_field_stands_on_every_later_push(
    sync: DocumentSync, calm_erp: FakeErp
) -> None:
    doc = invoice_doc()
    created = await sync.push(ObjectType.INVOICE, doc["id"], doc)
    calm_erp.user_edit("invoices", created.external_id, status="on hold")
    for paid in ("50.00", "119.00"):
        await sync.push(ObjectType.INVOICE, doc["id"], {**doc, "amount_paid": paid})
        [record] = records(calm_erp, doc["id"])
        assert record["status"] == "on hold"
        assert record["amount_paid"] == paid
