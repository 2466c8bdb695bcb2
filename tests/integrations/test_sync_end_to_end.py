"""Orders paid through the sandbox processor reach the fake ERP and the Beancount file through
the delivery engine, the books balance, and reconciliation reports zero mismatches."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from httpx import ASGITransport, AsyncClient

from integrations.fake_erp.server import FakeErp
from integrations.support import erp_config, eventually, running_worker, scalar
from orders.factories import make_world
from payments.factories import connect_sandbox, invoiced_order, pay
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.connectors.beancount.connector import BeancountConfig, BeancountConnector
from tradeflow.db import Database
from tradeflow.integrations.reconciliation import Reconciler
from tradeflow.kit.keyring import Keyring
from tradeflow.ledger import service as ledger
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess

ORDERS = 4


def ours(erp: FakeErp, collection: str, refs: set[str]) -> list[dict[str, Any]]:
    return [r for r in erp.dump(collection) if r.get("reference") in refs]


async def test_paid_orders_are_synced_once_booked_exported_and_reconciled(
    committed: Database,
    keyring: Keyring,
    fast_settings: Settings,
    calm_erp: FakeErp,
    sandbox_proc: SandboxProcess,
    tmp_path: Path,
) -> None:
    app = create_app(fast_settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    book_path = tmp_path / "books" / "seller.beancount"
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        world = await make_world(committed)
        async with SandboxControl(sandbox_proc.control_url) as control:
            await connect_sandbox(client, world, sandbox_proc, control)
        for kind, config in (
            ("rest_erp", erp_config(calm_erp, timeout_seconds=5.0)),
            ("beancount", {"path": str(book_path), "operating_currency": "EUR"}),
        ):
            r = await client.post(
                "/v1/connectors",
                json={"kind": kind, "name": kind, "config": config},
                headers=world.staff,
            )
            assert r.status_code == 201, r.text
        invoices: set[str] = set()
        payments: set[str] = set()
        for i in range(ORDERS):
            order = await invoiced_order(client, world, ("BOLT-1", i + 1))
            invoices.add(order["invoice_id"])
            paid = await pay(client, world, order["invoice_id"])
            assert paid.status_code == 201, paid.text
            payments.add(paid.json()["id"])

        async with running_worker(fast_settings, committed, keyring):

            async def settled() -> bool:
                erp_invoices = ours(calm_erp, "invoices", invoices)
                entries = await scalar(
                    committed,
                    "SELECT count(*) FROM ledger_entries WHERE tenant_id = :t",
                    t=world.tenant_id,
                )
                exported = (
                    await BeancountConnector(BeancountConfig(path=str(book_path))).exported_ids()
                    if book_path.exists()
                    else set()
                )
                waiting = await scalar(
                    committed,
                    "SELECT count(*) FROM deliveries d JOIN subscribers s "
                    "ON s.id = d.subscriber_id WHERE s.kind = 'connector' AND d.status <> "
                    "'delivered' AND d.tenant_id = :t",
                    t=world.tenant_id,
                )
                return (
                    waiting == 0
                    and len(erp_invoices) == ORDERS
                    and all(r["status"] == "paid" for r in erp_invoices)
                    and len(ours(calm_erp, "payments", payments)) == ORDERS
                    and entries == 2 * ORDERS
                    and len(exported) == entries
                )

            try:
                await eventually(settled, timeout=60, interval=0.2)
            except AssertionError:
                rows = await scalar(
                    committed,
                    "SELECT string_agg(d.event_type || ':' || d.status || ':' || d.attempts || ':' "
                    "|| coalesce(d.last_error, ''), ' | ') FROM deliveries d "
                    "JOIN subscribers s ON s.id = d.subscriber_id WHERE s.kind = 'connector' "
                    "AND d.status <> 'delivered'",
                )
                refs = await scalar(
                    committed,
                    "SELECT string_agg(object_type || ' ' || our_id || ' ' || state || ' '"
                    " || coalesce(external_id, '-') || ' ours=' || coalesce(last_ours::text, '')"
                    " || ' theirs=' || coalesce(last_theirs::text, ''), E'\n') FROM external_refs",
                )
                conflicts = await scalar(committed, "SELECT count(*) FROM sync_conflicts")
                raise AssertionError(
                    f"refs:\n{refs}\nconflicts={conflicts}\n"
                    f"not settled: {ours(calm_erp, 'invoices', invoices)} "
                    f"payments={len(ours(calm_erp, 'payments', payments))} deliveries={rows}"
                ) from None

        # Exactly once at the ERP, with our amounts, the payment pointing at its invoice.
        erp_invoices = ours(calm_erp, "invoices", invoices)
        assert Counter(r["reference"] for r in erp_invoices) == dict.fromkeys(invoices, 1)
        by_external = {r["id"]: r for r in erp_invoices}
        for record in ours(calm_erp, "payments", payments):
            invoice = by_external[record["invoice"]]
            assert record["amount"] == invoice["total"] == invoice["amount_paid"]
        assert len({r["customer"] for r in erp_invoices}) == 1
        assert (
            len(
                [
                    c
                    for c in calm_erp.dump("customers")
                    if c.get("reference") == str(world.customer_id)
                ]
            )
            == 1
        )

        # The Beancount file loads cleanly and its balances are our trial balance.
        book = BeancountConnector(BeancountConfig(path=str(book_path)))
        async with committed.tenant_session(world.tenant_id) as s:
            tb = await ledger.trial_balance(s, tenant_id=world.tenant_id)
            await s.commit()
        assert tb.balanced
        expected = {(r.code, r.currency): r.debit_minor - r.credit_minor for r in tb.accounts}
        assert await book.balances() == expected

        # Three-way reconciliation: nothing missing, duplicated or different.
        run_id = await Reconciler(committed, keyring, world.tenant_id).run("manual")
        r = await client.get(f"/v1/reconciliations/{run_id}", headers=world.staff)
        run = r.json()
        assert run["status"] == "clean", run
        assert run["checked"]["processor_payments"] == ORDERS
        assert run["checked"]["rest_erp:invoice"] == ORDERS

        # Connector status through the API: healthy, nothing waiting.
        listed = (await client.get("/v1/connectors", headers=world.staff)).json()["items"]
        assert {c["name"]: c["status"]["state"] for c in listed} == {
            "rest_erp": "healthy",
            "beancount": "healthy",
        }
        erp = next(c for c in listed if c["name"] == "rest_erp")
        assert erp["status"]["backlog"] == 0
        assert erp["status"]["documents"] == {"synced": 2 * ORDERS + 1}


async def test_reconciliation_reports_mismatches_by_kind(
    committed: Database, keyring: Keyring, calm_erp: FakeErp, tenant: uuid.UUID, tmp_path: Path
) -> None:
    """A run is not clean by construction: each kind of disagreement is found and counted."""
    import httpx

    from integrations.support import make_connector
    from tradeflow.integrations import settlements
    from tradeflow.kit.time import utcnow

    await make_connector(committed, tenant, keyring, kind="rest_erp", config=erp_config(calm_erp))
    await make_connector(
        committed,
        tenant,
        keyring,
        kind="beancount",
        config={"path": str(tmp_path / "empty.beancount")},
    )
    invoice_id, payment_id, customer_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lost_payment = uuid.uuid4()
    now = utcnow()
    async with committed.tenant_session(tenant) as s:
        await ledger.post_event(
            s,
            tenant_id=tenant,
            event_id=uuid.uuid4(),
            event_type="invoice.issued",
            payload={
                "invoice_id": str(invoice_id),
                "customer_id": str(customer_id),
                "currency": "EUR",
                "total_minor": 1200,
                "tax_minor": 200,
            },
            occurred_at=now,
        )
        await ledger.post_event(
            s,
            tenant_id=tenant,
            event_id=uuid.uuid4(),
            event_type="payment.captured",
            payload={
                "payment_id": str(payment_id),
                "invoice_id": str(invoice_id),
                "customer_id": str(customer_id),
                "currency": "EUR",
                "amount_minor": 1200,
            },
            occurred_at=now,
        )
        # The processor reports the booked payment with another amount, and one never booked.
        for pid, amount in ((payment_id, 1100), (lost_payment, 500)):
            await settlements.record_fact(
                s,
                tenant,
                "payment.captured",
                {
                    "payment_id": str(pid),
                    "currency": "EUR",
                    "amount_minor": amount,
                    "amount_captured_total_minor": amount,
                },
                at=now.replace(year=now.year - 1),
            )
        await s.commit()
    # The ERP holds the invoice twice (someone keyed it in by hand) and not the payment.
    for _ in range(2):
        httpx.post(
            f"{calm_erp.base_url}/api/v1/invoices",
            json={"reference": str(invoice_id), "total": "11.00"},
            headers={"Authorization": f"Bearer {calm_erp.token}"},
        ).raise_for_status()

    run_id = await Reconciler(committed, keyring, tenant).run("manual")
    async with committed.tenant_session(tenant) as s:
        from tradeflow.integrations.repository import IntegrationsRepository

        run = await IntegrationsRepository(s, tenant).run(run_id)
        await s.commit()
    assert run is not None
    assert run.status == "mismatches"
    assert run.counts == {
        "ledger_amount_differs": 1,
        "ledger_payment_missing": 1,
        "remote_duplicate": 1,
        "remote_amount_differs": 1,
        "remote_missing": 1,
        "journal_entry_missing": 2,
        "journal_balance_differs": 3,  # revenue, tax and clearing; receivables nets to 0
    }
    assert run.mismatch_count == sum(run.counts.values())
    events = await scalar(
        committed,
        "SELECT count(*) FROM events WHERE tenant_id = :t AND type = 'reconciliation.mismatch'",
        t=tenant,
    )
    assert events == 1


async def test_a_new_beancount_connector_exports_what_is_already_booked(
    committed: Database,
    keyring: Keyring,
    fast_settings: Settings,
    tenant: uuid.UUID,
    tmp_path: Path,
) -> None:
    from integrations.support import make_connector
    from tradeflow.integrations import service
    from tradeflow.kit.time import utcnow

    async with committed.tenant_session(tenant) as s:
        for total in (1200, 3400, 560):
            await ledger.post_event(
                s,
                tenant_id=tenant,
                event_id=uuid.uuid4(),
                event_type="invoice.issued",
                payload={
                    "invoice_id": str(uuid.uuid4()),
                    "customer_id": str(uuid.uuid4()),
                    "currency": "EUR",
                    "total_minor": total,
                    "tax_minor": total // 6,
                },
                occurred_at=utcnow(),
            )
        await s.commit()
    path = tmp_path / "late.beancount"
    instance = await make_connector(
        committed, tenant, keyring, kind="beancount", config={"path": str(path)}
    )
    book = BeancountConnector(BeancountConfig(path=str(path)))
    async with running_worker(fast_settings, committed, keyring):
        await eventually(lambda: _count(book, 3), timeout=30)
        # A replay exports again: entries already there are skipped, nothing is doubled.
        path.write_text(path.read_text().split("\n\n", 1)[0] + "\n\n")  # lose every entry
        async with committed.tenant_session(tenant) as s:
            await service.replay(s, tenant, instance.id, since=utcnow().replace(year=2000))
            await s.commit()
        await eventually(lambda: _count(book, 3), timeout=30)
    assert len(await book.exported_ids()) == 3
    async with committed.tenant_session(tenant) as s:
        tb = await ledger.trial_balance(s, tenant_id=tenant)
        await s.commit()
    assert await book.balances() == {
        (r.code, r.currency): r.debit_minor - r.credit_minor for r in tb.accounts
    }


async def _count(book: BeancountConnector, n: int) -> bool:
    return len(await book.exported_ids()) == n
