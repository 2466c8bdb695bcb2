"""The demo's sandbox set-up (kept across re-runs, usable at once) and `tradeflow sandbox …`."""

from __future__ import annotations

import json

import httpx
import typer
from httpx import AsyncClient
from typer.testing import CliRunner

from orders.factories import World
from payments.factories import invoiced_order, pay
from tradeflow import cli_payments
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.payments.demo import seed_demo_payments
from tradeflow.sandbox.local import LocalSandbox
from tradeflow.sandbox.process import SandboxProcess
from tradeflow.sandbox.store import Store


def _where(sandbox: SandboxProcess) -> LocalSandbox:
    host, port = sandbox.api_url.removeprefix("http://").split(":")
    control = int(sandbox.control_url.rsplit(":", 1)[1])
    return LocalSandbox(host=host, port=int(port), control_port=control)


async def test_demo_seeding_enables_the_sandbox_and_keeps_its_account(
    client: AsyncClient,
    world: World,
    rolled_back: Database,
    keyring: Keyring,
    sandbox_proc: SandboxProcess,
) -> None:
    store = Store(sandbox_proc.database_url)
    try:
        seeded = []
        for _ in range(2):
            async with rolled_back.tenant_session(world.tenant_id) as session:
                seeded.append(
                    await seed_demo_payments(
                        session,
                        world.tenant_id,
                        keyring=keyring,
                        store=store,
                        sandbox=_where(sandbox_proc),
                        webhook_url="http://127.0.0.1:9/v1/processor-webhooks/sandbox",
                    )
                )
                await session.commit()
    finally:
        await store.dispose()
    assert seeded[0] == seeded[1]
    assert seeded[0]["payment_method"] == "pm_sandbox_ok"
    order = await invoiced_order(client, world)
    r = await pay(client, world, order["invoice_id"], payment_method=seeded[0]["payment_method"])
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "captured"


def test_sandbox_cli_switches_faults_and_lists_charges(sandbox_proc: SandboxProcess) -> None:
    app = typer.Typer()
    cli_payments.register(app)
    runner = CliRunner()
    control = ["--control-url", sandbox_proc.control_url]
    created = runner.invoke(app, ["sandbox", "account", *control])
    assert created.exit_code == 0, created.output
    account = json.loads(created.stdout)
    r = runner.invoke(
        app,
        [
            "sandbox",
            "faults",
            account["id"],
            "--decline",
            "card_declined",
            "--webhooks",
            "off",
            *control,
        ],
    )
    assert r.exit_code == 0, r.output
    with httpx.Client(base_url=sandbox_proc.api_url) as api:
        declined = api.post(
            "/v1/charges",
            json={"amount": 100, "currency": "EUR", "payment_method": "pm_sandbox_ok"},
            headers={"authorization": f"Bearer {account['api_key']}", "idempotency-key": "k"},
        )
    assert declined.status_code == 402
    listed = runner.invoke(app, ["sandbox", "charges", account["id"], *control])
    assert listed.exit_code == 0
    assert "failed" in listed.stdout
    bad = runner.invoke(
        app, ["sandbox", "faults", account["id"], "--webhooks", "sideways", *control]
    )
    assert bad.exit_code == 2
