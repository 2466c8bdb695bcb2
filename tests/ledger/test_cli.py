"""`tradeflow ledger …` against a real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from ledger.support import invoice_payload, make_tenant, payment_payload, post
from tradeflow.cli import app as cli
from tradeflow.db import Database
from tradeflow.ledger.cli import register

if not any(g.name == "ledger" for g in cli.registered_groups):
    register(cli)

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("TRADEFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("TRADEFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TRADEFLOW_LOG_FORMAT", "console")
    monkeypatch.setenv("TRADEFLOW_LOG_LEVEL", "warning")
    return tmp_path


async def invoke(*args: str) -> Result:
    # The commands run their own event loop (asyncio.run): give them a thread.
    return await asyncio.to_thread(runner.invoke, cli, list(args))


async def test_ledger_commands(cli_env: Path, committed: Database) -> None:
    tenant = await make_tenant(committed)
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=12_100, tax=2_100)
    event_id = uuid.uuid4()
    await post(committed, tenant, "invoice.issued", invoice, event_id=event_id)
    await post(
        committed,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=12_100, fee=121),
    )
    t = str(tenant)

    r = await invoke("ledger", "trial-balance", "-t", t)
    assert r.exit_code == 0, r.output
    assert "Accounts receivable" in r.output
    assert "balanced" in r.output
    assert "12,100" in r.output

    r = await invoke("ledger", "trial-balance", "-t", t, "--json")
    tb = json.loads(r.stdout)
    assert tb["balanced"] is True
    assert tb["totals"][0]["debit_minor"] == 24_200

    r = await invoke("ledger", "entries", "-t", t, "--source-event-id", str(event_id), "--json")
    assert [e["source_event_id"] for e in json.loads(r.stdout)["items"]] == [str(event_id)]

    r = await invoke("ledger", "accounts", "-t", t)
    assert "processor_fees" in r.output

    r = await invoke("ledger", "verify", "-t", t)
    assert r.exit_code == 0, r.output
    assert "books balance: 2 entries, 6 lines" in r.output

    r = await invoke("ledger", "trial-balance", "-t", t, "--as-of", "2025-01-01")
    assert r.exit_code == 2  # a time without a zone is refused

    # Books broken behind the database's back (its rules switched off for the test) are
    # reported, and the command fails.
    async with committed.system_session() as s:
        await s.execute(text("ALTER TABLE ledger_lines DISABLE TRIGGER ledger_lines_immutable"))
        await s.execute(
            text(
                "UPDATE ledger_lines SET debit_minor = debit_minor + 1 "
                "WHERE tenant_id = :t AND debit_minor > 0 AND line_no = 1"
            ),
            {"t": tenant},
        )
        await s.execute(text("ALTER TABLE ledger_lines ENABLE TRIGGER ledger_lines_immutable"))
        await s.commit()
    r = await invoke("ledger", "verify", "-t", t)
    assert r.exit_code == 1
    assert "books do not balance: 2 unbalanced" in r.output
