"""`tradeflow commerceml …` for operators without 1C's HTTP exchange."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from httpx import AsyncClient
from typer.testing import CliRunner

from catalog.support import quote
from connectors.commerceml.conftest import make_shop
from connectors.commerceml.support import DATA
from tradeflow.config import Settings
from tradeflow.db import Database


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, settings: Settings, tmp_path: Path
) -> None:
    for name, value in {
        "TRADEFLOW_DATABASE_URL": database_url,
        "TRADEFLOW_MASTER_KEY": settings.master_key or "",
        "TRADEFLOW_HOME": str(tmp_path),
        "TRADEFLOW_LOG_FORMAT": "console",
        "TRADEFLOW_LOG_LEVEL": "warning",
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)


async def test_import_export_and_the_audit_from_the_command_line(
    app_client: AsyncClient, committed: Database, cli_env: None, tmp_path: Path
) -> None:
    from tradeflow.cli import app
    from tradeflow.connectors.commerceml.cli import register

    register(app)
    shop = await make_shop(app_client, committed)
    tenant, name = str(shop.seller.tenant_id), str(shop.connector["name"])
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["commerceml", *args, "-t", tenant, "-i", name])
        assert result.exit_code == 0, result.output
        return result.output

    output = await asyncio.to_thread(
        run, "import", str(DATA / "import.xml"), str(DATA / "offers.xml")
    )
    assert "import.xml: success" in output
    assert "products_created 3" in output
    assert "b4444444-1f3c-11ef-8c4a-00155d012a01: a product without Наименование" in output
    assert "prices_changed 6" in output
    r = await quote(app_client, shop.seller.headers, "BOLT-M8-50", 1, shop.wholesale_customer)
    assert r.json()["unit_price_minor"] == 1250

    target = tmp_path / "orders.xml"
    output = await asyncio.to_thread(run, "export-orders", "--out", str(target))
    assert "0 order(s)" in output
    assert target.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')

    output = await asyncio.to_thread(run, "exchanges")
    assert output.count("success") >= 2
    assert "offers.xml" in output

    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<not-commerceml/>")
    result = await asyncio.to_thread(
        runner.invoke, app, ["commerceml", "import", str(bad), "-t", tenant, "-i", name]
    )
    assert result.exit_code == 1
    assert "failure" in result.output
