"""`tradeflow events|deliveries|jobs` against the test database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeflow.cli import app
from tradeflow.cli_events import register
from tradeflow.config import Settings

register(app)
runner = CliRunner()


@pytest.fixture
def cli_env(settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("TRADEFLOW_MASTER_KEY", settings.master_key or "")
    monkeypatch.setenv("TRADEFLOW_HOME", str(settings.home))
    monkeypatch.setenv("TRADEFLOW_LOG_FORMAT", "console")
    monkeypatch.setenv("COLUMNS", "200")


def test_catalogue_write_then_check(cli_env: None, tmp_path: Path) -> None:
    doc = tmp_path / "events.md"
    doc.write_text("# Events\n\nHand-written introduction.\n")
    result = runner.invoke(app, ["events", "catalogue", "--write", str(doc), "--check"])
    assert result.exit_code == 1
    assert "stale" in result.output
    result = runner.invoke(app, ["events", "catalogue", "--write", str(doc)])
    assert result.exit_code == 0
    text = doc.read_text()
    assert text.startswith("# Events\n\nHand-written introduction.\n")
    assert "### `webhook.test` v1" in text
    result = runner.invoke(app, ["events", "catalogue", "--write", str(doc), "--check"])
    assert result.exit_code == 0, result.output


def test_listing_commands_run(cli_env: None) -> None:
    for args in (
        ["events", "list", "-n", "5"],
        ["deliveries", "list", "-n", "5"],
        ["deliveries", "endpoints"],
        ["deliveries", "dead-letters"],
        ["deliveries", "stats"],
        ["jobs", "list"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert "due deliveries" in runner.invoke(app, ["deliveries", "stats"]).output


def test_unknown_ids_are_errors(cli_env: None) -> None:
    result = runner.invoke(app, ["deliveries", "redeliver", str(uuid.uuid4())])
    assert result.exit_code == 1
    result = runner.invoke(app, ["jobs", "run", "no.such.job"])
    assert result.exit_code == 1
