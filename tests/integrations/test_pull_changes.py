"""Pulling changes from the fake ERP: their fields taken over, ours left alone, conflicts queued,
idempotent re-pulls, errors that keep the cursor, and paging."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select

from integrations.fake_erp.server import FakeErp
from integrations.support import (
    erp_config,
    eventually,
    make_connector,
    running_worker,
    scalar,
    undelivered,
)
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.connectors.rest_erp.connector import RestErpConnector
from tradeflow.customers import service as customers
from tradeflow.customers.schemas import CustomerIn
from tradeflow.db import Database
from tradeflow.events.scheduler import JOBS, JobContext
from tradeflow.integrations import documents, pull, service
from tradeflow.integrations.models import ConnectorInstance, ConnectorPull, ExternalRef
from tradeflow.integrations.plugins import ChangeBatch, DocumentConnector, ObjectType
from tradeflow.integrations.sync import DocumentSync
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

sys.path.insert(0, str(Path(__file__).parents[1] / "identity"))
from identity_factories import make_api_key, make_tenant


@dataclass
class Setup:
    db: Database
    keyring: Keyring
    erp: FakeErp
    tenant_id: uuid.UUID
    instance: ConnectorInstance
    sync: DocumentSync

    async def customer(self, name: str = "Acme GmbH", **extra: Any) -> uuid.UUID:
        async with self.db.tenant_session(self.tenant_id) as s:
            row = await customers.create_customer(
                s, self.tenant_id, CustomerIn(name=name, currency="EUR", **extra)
            )
            await s.commit()
        return row.id

    async def push(self, customer_id: uuid.UUID) -> str:
        async def load() -> dict[str, Any]:
            async with self.db.tenant_session(self.tenant_id) as s:
                doc = await documents.customer_document(s, customer_id)
                await s.commit()
            return doc

        return (await self.sync.push(ObjectType.CUSTOMER, str(customer_id), load)).external_id

    async def pull(self) -> pull.PullResult:
        async with self.db.tenant_session(self.tenant_id) as s:
            instance = await service.get_instance(s, self.tenant_id, self.instance.id)
            await s.commit()
        return await pull.pull_instance(self.db, self.keyring, instance)

    async def configure(self, **config: Any) -> None:
        """Change the instance's config: the fake ERP's, with `config` on top."""
        async with self.db.tenant_session(self.tenant_id) as s:
            await service.update_instance(
                s,
                self.tenant_id,
                self.instance.id,
                keyring=self.keyring,
                config=erp_config(self.erp, **config),
                allow_private=True,
            )
            await s.commit()

    async def drain(self) -> None:
        """Pull until the cursor has caught up with the ERP (it is shared by every test)."""
        for _ in range(20):
            result = await self.pull()
            assert result.status == "ok", result
            if result.counts["pulled"] == 0:
                return
        raise AssertionError("the pull did not catch up")

    async def view(self, customer_id: uuid.UUID) -> customers.CustomerView:
        async with self.db.tenant_session(self.tenant_id) as s:
            found = await customers.get_customer(s, customer_id)
            await s.commit()
        return found

    async def state(self) -> ConnectorPull:
        async with self.db.tenant_session(self.tenant_id) as s:
            row = (
                await s.execute(
                    select(ConnectorPull).where(ConnectorPull.connector_id == self.instance.id)
                )
            ).scalar_one()
            await s.commit()
        return row

    async def events(self, event_type: str) -> int:
        return int(
            await scalar(
                self.db,
                "SELECT count(*) FROM events WHERE tenant_id = :t AND type = :type",
                t=self.tenant_id,
                type=event_type,
            )
        )


@contextlib.asynccontextmanager
async def _setup(
    db: Database, keyring: Keyring, erp: FakeErp, tenant_id: uuid.UUID, **config: Any
) -> AsyncIterator[Setup]:
    instance = await make_connector(
        db, tenant_id, keyring, kind="rest_erp", config=erp_config(erp, **config)
    )
    plugin = service.open_plugin(instance, keyring)
    assert isinstance(plugin, DocumentConnector)
    await plugin.open()
    try:
        yield Setup(
            db, keyring, erp, tenant_id, instance, DocumentSync(db, tenant_id, instance.id, plugin)
        )
    finally:
        await plugin.close()


@pytest.fixture
async def setup(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, tenant: uuid.UUID
) -> AsyncIterator[Setup]:
    async with _setup(committed, keyring, calm_erp, tenant) as made:
        yield made


async def test_their_fields_are_taken_over_and_ours_are_not(setup: Setup) -> None:
    customer_id = await setup.customer(payment_terms_days=30)
    external_id = await setup.push(customer_id)
    await setup.drain()
    setup.erp.user_edit(
        "customers",
        external_id,
        tax_id="DE811907980",
        credit_limit="5000.00",
        payment_terms_days=45,
        billing_address={"line1": "Hafenstr. 1", "city": "Hamburg", "country": "DE"},
        currency="USD",  # ours: Tradeflow invoices in EUR whatever the ERP says
    )
    updated_before = await setup.events("customer.updated")

    result = await setup.pull()

    assert result.status == "ok"
    assert result.counts["applied"] == 1
    assert result.counts["conflicted"] == 0
    view = await setup.view(customer_id)
    assert view.tax_id == "DE811907980"
    assert view.credit_limit_minor == 500_000
    assert view.payment_terms_days == 45
    assert view.billing_address is not None
    assert view.billing_address["city"] == "Hamburg"
    assert view.currency == "EUR"
    assert await setup.events("customer.updated") == updated_before + 1
    state = await setup.state()
    assert state.last_counts["applied"] == 1
    assert state.last_error is None
    assert state.next_pull_at is not None


async def test_a_repeated_pull_and_the_echo_of_our_own_push_are_no_ops(setup: Setup) -> None:
    customer_id = await setup.customer()
    external_id = await setup.push(customer_id)
    await setup.drain()
    setup.erp.user_edit("customers", external_id, tax_id="FR40303265045")
    first = await setup.pull()
    assert first.counts["applied"] == 1
    events = await setup.events("customer.updated")
    version = await scalar(setup.db, "SELECT version FROM customers WHERE id = :id", id=customer_id)

    again = await setup.pull()
    assert again.counts["applied"] == 0
    assert again.counts["pulled"] == again.counts["unchanged"]
    # Our own later push (the shared name) comes back in the feed: nothing to take over.
    async with setup.db.tenant_session(setup.tenant_id) as s:
        await customers.apply_external_changes(s, customer_id, {"name": "Acme Renamed"})
        await s.commit()
    await setup.push(customer_id)
    [record] = [r for r in setup.erp.dump("customers") if r["id"] == external_id]
    assert record["name"] == "Acme Renamed"
    echo = await setup.pull()
    assert echo.counts["applied"] == 0
    assert echo.counts["conflicted"] == 0
    view = await setup.view(customer_id)
    assert view.tax_id == "FR40303265045"
    assert view.name == "Acme Renamed"
    assert await setup.events("customer.updated") == events + 1  # only our rename
    assert (
        await scalar(setup.db, "SELECT version FROM customers WHERE id = :id", id=customer_id)
        == version + 1
    )


async def test_a_shared_field_changed_on_both_sides_is_a_conflict_resolved_through_the_api(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, fast_settings: Settings
) -> None:
    tenant = await make_tenant(committed)
    _, token = await make_api_key(committed, tenant)
    headers = {"Authorization": f"Bearer {token}"}
    async with _setup(committed, keyring, calm_erp, tenant.id) as setup:
        customer_id = await setup.customer(name="Acme GmbH")
        external_id = await setup.push(customer_id)
        await setup.drain()
        async with committed.tenant_session(tenant.id) as s:
            await customers.apply_external_changes(s, customer_id, {"name": "Acme Group GmbH"})
            await s.commit()
        calm_erp.user_edit("customers", external_id, name="ACME Gesellschaft mbH", tax_id="X1")

        result = await setup.pull()
        assert result.counts["conflicted"] == 1
        view = await setup.view(customer_id)
        assert view.name == "Acme Group GmbH"  # not overwritten
        assert view.tax_id == "X1"  # theirs: taken over all the same
        assert await setup.events("sync.conflict") == 1
        assert (await setup.pull()).counts["conflicted"] == 0  # reported once

        app = create_app(fast_settings, committed, keyring=keyring)
        transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            listed = (await client.get("/v1/sync-conflicts?status=open", headers=headers)).json()[
                "items"
            ]
            assert [c["object_id"] for c in listed] == [str(customer_id)]
            assert listed[0]["fields"] == [
                {
                    "field": "name",
                    "base": "Acme GmbH",
                    "ours": "Acme Group GmbH",
                    "theirs": "ACME Gesellschaft mbH",
                }
            ]
            conflict_url = f"/v1/sync-conflicts/{listed[0]['id']}"
            r = await client.post(
                f"{conflict_url}/resolve",
                json={"resolution": "theirs"},
                headers=headers,
            )
            assert r.status_code == 200, r.text

            async def resolved() -> bool:
                got = await client.get(conflict_url, headers=headers)
                return bool(got.json()["status"] == "resolved")

            async with running_worker(fast_settings, committed, keyring):
                await eventually(resolved, timeout=30)

                # Taking theirs holds on our side too, and the push it causes changes nothing.
                async def settled() -> bool:
                    return await undelivered(committed, tenant.id) == 0

                await eventually(settled, timeout=30)
        assert (await setup.view(customer_id)).name == "ACME Gesellschaft mbH"
        [record] = [r for r in calm_erp.dump("customers") if r["id"] == external_id]
        assert record["name"] == "ACME Gesellschaft mbH"
        after = await setup.pull()
        assert after.counts["conflicted"] == 0
        assert after.counts["applied"] == 0


async def test_an_erp_failure_is_recorded_and_keeps_the_cursor(setup: Setup) -> None:
    customer_id = await setup.customer()
    external_id = await setup.push(customer_id)
    await setup.drain()
    cursor = (await setup.state()).cursor
    setup.erp.user_edit("customers", external_id, payment_terms_days=60)
    setup.erp.control(error_rate=1.0)

    failed = await setup.pull()

    assert failed.status == "failed"
    assert failed.error is not None
    assert "500" in failed.error
    state = await setup.state()
    assert state.cursor == cursor
    assert state.consecutive_failures == 1
    assert state.last_error is not None
    assert "500" in state.last_error
    async with setup.db.tenant_session(setup.tenant_id) as s:
        status = await service.status(s, setup.instance)
        await s.commit()
    assert status.state == "degraded"
    assert status.last_error is not None
    assert status.last_error.startswith("pull: ")
    assert (await setup.view(customer_id)).payment_terms_days == 30

    setup.erp.calm()
    ok = await setup.pull()
    assert ok.status == "ok"
    assert ok.counts["applied"] == 1
    assert (await setup.view(customer_id)).payment_terms_days == 60
    state = await setup.state()
    assert state.consecutive_failures == 0
    assert state.cursor != cursor


async def test_changes_are_pulled_across_pages(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, tenant: uuid.UUID
) -> None:
    async with _setup(committed, keyring, calm_erp, tenant, pull_page_size=2) as setup:
        ids = [await setup.customer(name=f"Customer {i}") for i in range(5)]
        external = [await setup.push(i) for i in ids]
        await setup.drain()
        for n, ext in enumerate(external):
            calm_erp.user_edit("customers", ext, tax_id=f"TAX-{n}")
        pages_before = calm_erp.stats()["change_pages"]

        result = await setup.pull()

        assert result.status == "ok"
        assert result.counts["applied"] == 5
        assert result.pages >= 3
        assert calm_erp.stats()["change_pages"] - pages_before == result.pages
        assert [(await setup.view(i)).tax_id for i in ids] == [f"TAX-{n}" for n in range(5)]


async def test_unknown_records_are_reported_unless_creating_them_is_enabled(setup: Setup) -> None:
    await setup.drain()
    created = httpx.post(
        f"{setup.erp.base_url}/api/v1/customers",
        json={"name": "Keyed in at the ERP", "currency": "EUR", "tax_id": "NL1"},
        headers={"Authorization": f"Bearer {setup.erp.token}"},
    ).json()

    result = await setup.pull()
    assert result.counts["unknown"] == 1
    assert (await setup.state()).problems[0]["external_id"] == created["id"]
    assert (
        await scalar(
            setup.db, "SELECT count(*) FROM customers WHERE tenant_id = :t", t=setup.tenant_id
        )
        == 0
    )

    await setup.configure(pull_create_unknown=True)
    setup.erp.user_edit("customers", created["id"], payment_terms_days=14)
    result = await setup.pull()
    assert result.counts["created"] == 1
    async with setup.db.tenant_session(setup.tenant_id) as s:
        ref = (
            await s.execute(select(ExternalRef).where(ExternalRef.external_id == created["id"]))
        ).scalar_one()
        await s.commit()
    view = await setup.view(uuid.UUID(ref.our_id))
    assert (view.name, view.tax_id, view.payment_terms_days) == ("Keyed in at the ERP", "NL1", 14)
    assert ref.state == "synced"
    # Its own push finds it linked: nothing is created twice at the ERP.
    assert await setup.push(view.id) == created["id"]
    assert len([r for r in setup.erp.dump("customers") if r.get("tax_id") == "NL1"]) == 1


async def test_pull_through_the_api_is_queued_and_run_by_the_worker_job(
    committed: Database,
    keyring: Keyring,
    calm_erp: FakeErp,
    fast_settings: Settings,
    tmp_path: Path,
) -> None:
    tenant = await make_tenant(committed)
    _, token = await make_api_key(committed, tenant)
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(fast_settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    yearly = "0 0 1 1 *"  # the scheduled pull is not due again during the test
    async with _setup(committed, keyring, calm_erp, tenant.id, pull_cron=yearly) as setup:
        customer_id = await setup.customer()
        external_id = await setup.push(customer_id)
        await setup.drain()
        calm_erp.user_edit("customers", external_id, tax_id="API-1")
        book = await make_connector(
            committed,
            tenant.id,
            keyring,
            kind="beancount",
            config={"path": str(tmp_path / "b.beancount")},
        )
        push_only = await make_connector(
            committed,
            tenant.id,
            keyring,
            kind="rest_erp",
            config=erp_config(calm_erp, pull_objects=[], pull_cron=yearly),
        )
        async with AsyncClient(transport=transport, base_url="http://testserver") as client:
            url = f"/v1/connectors/{setup.instance.id}"
            r = await client.post(f"{url}/pull", headers=headers)
            assert r.status_code == 202, r.text
            assert r.json()["status"]["pull"]["requested"] is True
            for other in (book, push_only):
                r = await client.post(f"/v1/connectors/{other.id}/pull", headers=headers)
                assert r.status_code == 422
                assert r.json()["type"].endswith("connector-cannot-pull")

            # The connector configured not to pull is looked at once, then left alone.
            assert await pull.run_due(committed, keyring) == 2

            got = (await client.get(url, headers=headers)).json()["status"]["pull"]
            assert got["requested"] is False
            assert got["last_counts"]["applied"] == 1
            assert got["last_pull_at"] is not None
            assert (await setup.view(customer_id)).tax_id == "API-1"
            # Nothing due now: the next run waits for the connector's own schedule.
            assert got["next_pull_at"].startswith(f"{utcnow().year + 1}-01-01T00:00:00")
            assert await pull.run_due(committed, keyring) == 0

            # The worker's scheduled job is what runs requested and due pulls.
            calm_erp.user_edit("customers", external_id, tax_id="API-2")
            assert (await client.post(f"{url}/pull", headers=headers)).status_code == 202
            job = JOBS["integrations.pull_changes"]
            await job.fn(JobContext(fast_settings, committed, job.name, utcnow()))
            got = (await client.get(url, headers=headers)).json()["status"]["pull"]
            assert got["requested"] is False
            assert got["totals"]["applied"] == 2
            assert (await setup.view(customer_id)).tax_id == "API-2"

            await client.post(f"{url}/pause", headers=headers)
            r = await client.post(f"{url}/pull", headers=headers)
            assert r.status_code == 409
            assert r.json()["type"].endswith("connector-inactive")


async def test_the_cli_pulls_in_place_and_shows_the_last_pull(
    setup: Setup, settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tradeflow.cli import app
    from tradeflow.cli_integrations import register

    register(app)
    for name, value in {
        "TRADEFLOW_DATABASE_URL": database_url,
        "TRADEFLOW_MASTER_KEY": settings.master_key or "",
        "TRADEFLOW_HOME": str(settings.home),
        "TRADEFLOW_LOG_FORMAT": "console",
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    customer_id = await setup.customer()
    external_id = await setup.push(customer_id)
    await setup.drain()
    setup.erp.user_edit("customers", external_id, tax_id="CLI-1")
    runner = CliRunner()
    tenant = str(setup.tenant_id)

    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(
        runner.invoke, app, ["connectors", "pull", "-t", tenant, setup.instance.name]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"applied\s*│\s*1\b", result.output), result.output
    assert (await setup.view(customer_id)).tax_id == "CLI-1"

    listed = await asyncio.to_thread(runner.invoke, app, ["connectors", "list", "-t", tenant])
    assert listed.exit_code == 0, listed.output
    assert "1/1/0" in listed.output

    setup.erp.control(error_rate=1.0)
    failed = await asyncio.to_thread(
        runner.invoke, app, ["connectors", "pull", "-t", tenant, setup.instance.name]
    )
    setup.erp.calm()
    assert failed.exit_code == 1
    shown = await asyncio.to_thread(
        runner.invoke, app, ["connectors", "status", "-t", tenant, setup.instance.name]
    )
    assert "last pull error" in shown.output
    assert "500" in shown.output


async def test_their_shared_edit_seen_by_a_push_first_is_still_taken_over(setup: Setup) -> None:
    customer_id = await setup.customer(name="Acme GmbH")
    external_id = await setup.push(customer_id)
    await setup.drain()
    setup.erp.user_edit("customers", external_id, name="Acme Holding GmbH")
    # A push runs before the pull (e.g. for another change): their edit of the shared name
    # stands at the ERP, and stays their change for the pull to take over.
    await setup.push(customer_id)
    await setup.push(customer_id)
    [record] = [r for r in setup.erp.dump("customers") if r["id"] == external_id]
    assert record["name"] == "Acme Holding GmbH"

    result = await setup.pull()

    assert result.counts["applied"] == 1
    assert (await setup.view(customer_id)).name == "Acme Holding GmbH"


class OpaqueVersions(RestErpConnector):
    """The REST connector as it sees an ERP whose listing carries only opaque ETags, with a
    hook run right after a page is read (a push landing between read and apply)."""

    after_read: Callable[[], Awaitable[None]] | None = None

    async def pull_changes(self, cursor: str | None) -> ChangeBatch:
        batch = await super().pull_changes(cursor)
        changes = [dataclasses.replace(c, version=f'W/"{c.version}"') for c in batch.changes]
        if self.after_read is not None:
            hook, self.after_read = self.after_read, None
            await hook()
        return batch._replace(changes=changes)


async def test_a_page_read_before_a_push_is_read_again_when_versions_cannot_be_ordered(
    setup: Setup,
) -> None:
    customer_id = await setup.customer(name="Acme GmbH")
    external_id = await setup.push(customer_id)
    await setup.drain()
    setup.erp.user_edit("customers", external_id, tax_id="ETAG-1")

    async def rename_and_push() -> None:
        async with setup.db.tenant_session(setup.tenant_id) as s:
            await customers.apply_external_changes(s, customer_id, {"name": "Acme Renamed"})
            await s.commit()
        await setup.push(customer_id)

    connector = OpaqueVersions(setup.sync.connector.config)
    connector.after_read = rename_and_push
    await connector.open()
    try:
        result = await pull.ChangePuller(
            setup.db, setup.tenant_id, setup.instance.id, connector
        ).run()
    finally:
        await connector.close()

    assert result.status == "ok", result
    view = await setup.view(customer_id)
    assert view.name == "Acme Renamed"  # the page's older name did not win
    assert view.tax_id == "ETAG-1"  # and their edit was not lost either


async def test_our_own_unanswered_create_is_never_created_again_from_the_feed(setup: Setup) -> None:
    from tradeflow.integrations.plugins import RemoteTimeout

    await setup.drain()
    await setup.configure(pull_create_unknown=True)
    customer_id = await setup.customer(name="Timed Out GmbH")
    setup.erp.control(timeout_rate=1.0, hang_seconds=2.0)
    with pytest.raises(RemoteTimeout):
        await setup.push(customer_id)  # the ERP committed it; we never heard back
    setup.erp.calm()

    result = await setup.pull()

    assert result.counts["created"] == 0
    assert result.counts["ignored"] == 1
    count = "SELECT count(*) FROM customers WHERE tenant_id = :t"
    assert await scalar(setup.db, count, t=setup.tenant_id) == 1


class Interrupted(RestErpConnector):
    """Killed (cancelled) while reading its second page."""

    pages = 0

    async def pull_changes(self, cursor: str | None) -> ChangeBatch:
        self.pages += 1
        if self.pages == 2:
            raise asyncio.CancelledError
        return await super().pull_changes(cursor)


async def test_an_interrupted_pull_keeps_what_it_applied_and_the_next_one_continues(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, tenant: uuid.UUID
) -> None:
    async with _setup(committed, keyring, calm_erp, tenant, pull_page_size=2) as setup:
        ids = [await setup.customer(name=f"Customer {i}") for i in range(4)]
        external = [await setup.push(i) for i in ids]
        await setup.drain()
        cursor = (await setup.state()).cursor
        for n, ext in enumerate(external):
            calm_erp.user_edit("customers", ext, tax_id=f"CUT-{n}")

        connector = Interrupted(setup.sync.connector.config)
        with pytest.raises(asyncio.CancelledError):
            await pull.ChangePuller(committed, tenant, setup.instance.id, connector).run()
        await connector.close()

        state = await setup.state()
        assert state.running_until is None  # the lease is given back
        assert state.last_error == "interrupted"
        assert state.cursor != cursor  # the first page was applied, and only it
        assert [(await setup.view(i)).tax_id for i in ids] == ["CUT-0", "CUT-1", None, None]
        result = await setup.pull()
        assert result.counts["applied"] == 2
        assert [(await setup.view(i)).tax_id for i in ids] == [f"CUT-{n}" for n in range(4)]
