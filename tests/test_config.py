"""Settings: environment variables, a TOML file, aliases, and errors that name the bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradeflow.cli import app as cli_app
from tradeflow.config import ConfigError, Settings, load_settings, settings_markdown

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the machine running the tests."""
    for key in list(os.environ):
        if key.startswith("TRADEFLOW_") or key in {
            "DATABASE_URL",
            "DATABASE_REPLICA_URL",
            "REDIS_URL",
        }:
            monkeypatch.delenv(key)


def _error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    return str(info.value)


def test_defaults_run_embedded_on_localhost() -> None:
    s = load_settings()
    assert s.embedded
    assert s.database_url is None
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.otel_exporter == "none"
    assert s.log_format == "json"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_PORT", "9123")
    monkeypatch.setenv("TRADEFLOW_LOG_LEVEL", "debug")
    monkeypatch.setenv("TRADEFLOW_RATELIMIT_ENABLED", "false")
    monkeypatch.setenv("TRADEFLOW_WEBHOOKS_RETRY_SCHEDULE", "[1, 2, 3]")
    monkeypatch.setenv("TRADEFLOW_HOME", "/srv/tradeflow")
    s = load_settings()
    assert s.port == 9123
    assert s.log_level == "debug"
    assert s.ratelimit_enabled is False
    assert s.webhooks_retry_schedule == [1, 2, 3]
    assert s.home == Path("/srv/tradeflow")


def test_database_and_redis_url_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.internal/tradeflow")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    s = load_settings()
    assert s.database_url == "postgresql://app@db.internal/tradeflow"
    assert s.redis_url == "redis://cache.internal:6379/0"
    assert not s.embedded
    # The prefixed name wins over the conventional one.
    monkeypatch.setenv("TRADEFLOW_DATABASE_URL", "postgresql://app@primary/tradeflow")
    assert load_settings().database_url == "postgresql://app@primary/tradeflow"


def test_empty_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    assert load_settings().embedded


def test_toml_file_below_environment_below_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tradeflow.toml"
    config.write_text(
        'port = 7001\nlog_level = "warning"\ndatabase_url = "postgresql://u@toml/db"\n'
        'ratelimit_default = "50/second"\n'
    )
    monkeypatch.setenv("TRADEFLOW_CONFIG", str(config))
    s = load_settings()
    assert (s.port, s.log_level, s.ratelimit_default) == (7001, "warning", "50/second")
    assert s.database_url == "postgresql://u@toml/db"

    monkeypatch.setenv("TRADEFLOW_PORT", "7002")
    assert load_settings().port == 7002
    assert load_settings(port=7003).port == 7003


def test_bad_values_are_named_with_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_PORT", "eighty")
    monkeypatch.setenv("TRADEFLOW_LOG_FORMAT", "xml")
    monkeypatch.setenv("TRADEFLOW_RATELIMIT_AUTH", "lots")
    message = _error()
    assert message.startswith("invalid configuration:")
    assert "port (TRADEFLOW_PORT):" in message
    assert "'eighty'" in message
    assert "log_format (TRADEFLOW_LOG_FORMAT):" in message
    assert "'xml'" in message
    assert "ratelimit_auth (TRADEFLOW_RATELIMIT_AUTH): Value error, not a rate limit" in message


def test_database_url_must_be_postgresql_and_its_password_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://app:s3cret@db/tradeflow")
    message = _error()
    assert "database_url (TRADEFLOW_DATABASE_URL or DATABASE_URL):" in message
    assert "PostgreSQL is the only database" in message
    assert "'mysql://app:***@db/tradeflow'" in message
    assert "s3cret" not in message


def test_master_key_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_MASTER_KEY", "k1:c2VjcmV0")
    with pytest.raises(ConfigError) as info:
        load_settings(master_key=["not", "a", "string"])
    assert "master_key (TRADEFLOW_MASTER_KEY)" in str(info.value)
    assert "not shown" in str(info.value)
    assert "'not'" not in str(info.value)


def test_cross_setting_rule_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFLOW_DELIVERY_LEASE_SECONDS", "10")
    monkeypatch.setenv("TRADEFLOW_WEBHOOKS_TIMEOUT_SECONDS", "30")
    message = _error()
    assert "settings:" in message
    assert "delivery_lease_seconds must exceed webhooks_timeout_seconds" in message


def test_toml_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("TRADEFLOW_CONFIG", str(missing))
    assert "which is not a file" in _error()

    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    monkeypatch.setenv("TRADEFLOW_CONFIG", str(broken))
    assert "is not valid TOML" in _error()

    typo = tmp_path / "typo.toml"
    typo.write_text('prot = 8080\nlog_level = "loud"\n')
    monkeypatch.setenv("TRADEFLOW_CONFIG", str(typo))
    message = _error()
    assert f"invalid configuration (environment and {typo}):" in message
    assert "prot: not a Tradeflow setting (got 8080)" in message
    assert "log_level (TRADEFLOW_LOG_LEVEL):" in message


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_up_with_a_bad_value_exits_2_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["up"],
        env={"TRADEFLOW_HOME": str(tmp_path), "TRADEFLOW_LOG_LEVEL": "[bold]loud"},
    )
    assert result.exit_code == 2, result.output
    output = _one_line(result.output)
    assert "configuration error" in output
    assert "log_level (TRADEFLOW_LOG_LEVEL)" in output
    assert "'[bold]loud'" in output  # printed as given, not read as console markup
    assert not (tmp_path / "pgdata").exists(), "nothing may start before settings are valid"


def test_up_as_a_process_exits_2_on_a_bad_value(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRADEFLOW_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(TRADEFLOW_HOME=str(tmp_path), TRADEFLOW_PORT="70000")
    done = subprocess.run(
        [sys.executable, "-m", "tradeflow", "up", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "port (TRADEFLOW_PORT): Input should be less than or equal to 65535" in done.stderr
    assert "(got '70000')" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_setting_is_described() -> None:
    undescribed = [n for n, f in Settings.model_fields.items() if not f.description]
    assert undescribed == [], "add a docstring under each of these settings in config.py"


def _table_in(path: Path) -> str:
    text = path.read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"
    assert start in text, f"{path} lost its settings table markers"
    assert end in text, f"{path} lost its settings table markers"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_configuration_docs_match_settings() -> None:
    assert _table_in(ROOT / "docs" / "configuration.md") == settings_markdown(), (
        "docs/configuration.md is out of date: run `python -m tradeflow.config "
        "docs/configuration.md`"
    )


def test_readme_table_rows_match_settings() -> None:
    rows = [r for r in _table_in(ROOT / "README.md").splitlines() if r.startswith("| `")]
    assert len(rows) >= 8
    generated = set(settings_markdown().splitlines())
    stale = [r for r in rows if r not in generated]
    assert stale == [], "README rows differ from `python -m tradeflow.config`"
