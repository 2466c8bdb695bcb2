"""Reconciliation reads the processor's own settlement listing: a clean run is clean with fees
and refunds; a capture made at the processor behind Tradeflow's back is a mismatch."""

from __future__ import annotations

import uuid

from httpx import ASGITransport, AsyncClient

from integrations.support import eventually, running_worker, scalar
from orders.factories import make_world
from payments.factories import connect_sandbox, invoiced_order, pay
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.integrations.reconciliation import Reconciler
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.kit.keyring import Keyring
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


async def _run(db: Database, keyring: Keyring, tenant: uuid.UUID) -> tuple[object, list[object]]:
    run_id = await Reconciler(db, keyring, tenant).run("manual")
    async with db.tenant_session(tenant) as s:
        repo = IntegrationsRepository(s, tenant)
        run = await repo.run(run_id)
        from sqlalchemy import text

        found = (
            await s.execute(
                text(
                    "SELECT kind, object_type, object_id, detail FROM reconciliation_mismatches "
                    "WHERE run_id = :r ORDER BY kind"
                ),
                {"r": run_id},
            )
        ).all()
        await s.commit()
    return run, list(found)


async def test_the_processor_leg_reads_the_processors_books(
    committed: Database,
    keyring: Keyring,
    fast_settings: Settings,
    sandbox_proc: SandboxProcess,
) -> None:
    app = create_app(fast_settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with (
        AsyncClient(transport=transport, base_url="http://testserver") as client,
        SandboxControl(sandbox_proc.control_url) as control,
    ):
        world = await make_world(committed)
        merchant = await connect_sandbox(client, world, sandbox_proc, control)
        first = await invoiced_order(client, world)
        paid = (await pay(client, world, first["invoice_id"])).json()
        assert paid["fee_minor"] == 65  # 2.9 % of 1200 = 34.8 → 35, + 30
        second = await invoiced_order(client, world, ("BOLT-1", 2))
        auth = (await pay(client, world, second["invoice_id"], capture_method="manual")).json()
        url = f"/v1/payments/{auth['id']}/capture"
        for body in ({"amount_minor": 1000}, {}):
            assert (await client.post(url, json=body, headers=world.staff)).status_code == 200
        refund = await client.post(
            "/v1/refunds",
            json={"payment_id": paid["id"], "amount_minor": 500},
            headers={**world.staff, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert refund.status_code == 201, refund.text

        async with running_worker(fast_settings, committed, keyring):

            async def booked() -> bool:
                entries = await scalar(
                    committed,
                    "SELECT count(*) FROM ledger_entries WHERE tenant_id = :t",
                    t=world.tenant_id,
                )
                return bool(entries == 2 + 3 + 1)  # 2 invoices, 3 captures, 1 refund

            await eventually(booked, timeout=60, interval=0.2)

        run, found = await _run(committed, keyring, world.tenant_id)
        assert run.status == "clean", found  # type: ignore[attr-defined]
        assert run.checked["sandbox:settlements"] == 4  # type: ignore[attr-defined]

        # The processor captures money Tradeflow never asked for and never hears about.
        behind = await control.charge_directly(merchant.account_id, amount=777, currency="EUR")
        run, found = await _run(committed, keyring, world.tenant_id)
        assert run.counts == {"processor_capture_unknown": 1}  # type: ignore[attr-defined]
        kind, object_type, object_id, detail = found[0]  # type: ignore[misc]
        assert (kind, object_type, object_id) == (
            "processor_capture_unknown",
            "processor_charge",
            behind["id"],
        )
        assert detail["captured_minor"] == 777
        assert detail["processor"] == "sandbox"

        # A listing that cannot be read is reported, not taken for an empty one.
        await control.down()
        try:
            run, found = await _run(committed, keyring, world.tenant_id)
        finally:
            await control.up()
        assert run.counts == {"processor_unreadable": 1}  # type: ignore[attr-defined]
