"""Settings: `TRADEFLOW_*` environment variables and an optional TOML file.

Precedence, highest first: init arguments, environment, the TOML file named by
`TRADEFLOW_CONFIG` (keys are the setting names: `port = 8080`), defaults.
Validation happens once at start-up and a bad value is reported by name (see
`load_settings`); docs/configuration.md lists every setting.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(Exception):
    """Raised when settings fail validation; the message names each bad value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRADEFLOW_",
        extra="forbid",
        validate_default=True,
        # The docstring under each setting is its description (docs/configuration.md).
        use_attribute_docstrings=True,
    )

    home: Path = Path("var")
    """Folder for the embedded database, generated keys, metrics files and demo credentials."""
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRADEFLOW_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="External PostgreSQL >= 15; unset means the embedded server.",
    )
    database_replica_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TRADEFLOW_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL", "database_replica_url"
        ),
    )
    """Read replica for read-only queries (PostgreSQL >= 15); accepted, not used yet."""
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRADEFLOW_REDIS_URL", "REDIS_URL", "redis_url"),
        description="Shared rate limits and cache; unset means in-process.",
    )
    db_app_role: str = Field(
        default="tradeflow_app",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Role request transactions run as, so row-level security applies.",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections each process keeps open to PostgreSQL."""
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    """Extra connections a process may open above the pool size under load."""

    host: str = "127.0.0.1"
    """Interface the HTTP API binds to."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port the HTTP API binds to."""
    public_url: str | None = None
    """URL clients reach the API at (links, demo credentials); unset means http://host:port."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged: debug, info, warning or error."""
    log_format: Literal["json", "console"] = "json"
    """json (one object per line, for machines) or console (for people)."""
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the /metrics endpoint `tradeflow worker` serves on TRADEFLOW_HOST; unset: none."""
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    """Trace exporter: none (tracing off), console (spans on stdout) or otlp."""
    otel_endpoint: str | None = None
    """OTLP/HTTP traces endpoint; unset uses the OTEL_EXPORTER_OTLP_* variables."""
    otel_service_name: str = "tradeflow"
    """service.name on every span."""

    master_key: str | None = Field(
        default=None,
        description="Base64 AES-256 master key(s), 'kid:key' comma-separated, first active.",
    )
    master_key_file: Path | None = None
    """File holding the master key ring as JSON; alternative to TRADEFLOW_MASTER_KEY."""

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    """Lifetime of an access token (JWT)."""
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)
    """Lifetime of a refresh token family."""
    jwt_issuer: str = "tradeflow"
    """iss claim of issued access tokens."""

    ratelimit_default: str = "600/minute"
    """Request budget per API key, user or IP (limits syntax, e.g. 600/minute)."""
    ratelimit_auth: str = "10/minute"
    """Stricter budget for the authentication endpoints."""
    ratelimit_enabled: bool = True
    """Turn rate limiting off entirely (benchmarks only)."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger bodies get 413."""

    media_dir: Path | None = Field(
        default=None, description="Product images and thumbnails; unset: $TRADEFLOW_HOME/media."
    )
    # An upload is also a request body: raise max_body_bytes with this.
    media_max_image_bytes: int = Field(default=1_000_000, ge=1024)
    """Largest product image upload accepted, in bytes."""
    media_max_image_pixels: int = Field(default=25_000_000, ge=1)
    """Largest image accepted, in pixels (width x height), against decompression bombs."""
    price_cache_ttl_seconds: int = Field(default=300, ge=0, le=86_400)
    """How long a computed customer price is cached; 0 turns the cache off."""
    price_cache_max_entries: int = Field(default=50_000, ge=0)
    """Most prices kept in each process's in-memory price cache."""

    login_max_failures: int = Field(default=5, ge=1)
    """Failed logins of one account before it is locked."""
    login_lockout_seconds: int = Field(default=900, ge=1)
    """How long a locked account stays locked."""
    login_ip_max_failures: int = Field(default=50, ge=1)
    """Failed logins from one IP before that IP is locked out."""

    webhooks_allow_private: bool = False
    """Allow webhook, connector and processor URLs on private or loopback addresses."""
    payments_authorization_expiry_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    """Manual-capture authorisations left uncaptured this long are voided at the processor."""
    # Event delivery (docs/delivery.md). Retry delays are the waits after each failed
    # attempt, so the attempt budget is their count + 1 (Svix's schedule by default).
    webhooks_retry_schedule: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000], min_length=0, max_length=30
    )
    """Seconds to wait after each failed webhook attempt (JSON list); attempts = length + 1."""
    webhooks_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    """Timeout of one webhook delivery attempt."""
    webhooks_max_response_bytes: int = Field(default=65_536, ge=0)
    """Bytes of a subscriber's response kept for diagnosis."""
    webhooks_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    """How long the previous signing secret stays valid after rotation."""
    handler_retry_schedule: list[float] = Field(
        default=[1, 5, 30, 120, 600, 1800, 3600], min_length=0, max_length=30
    )
    """Seconds to wait after each failed internal event-handler attempt (JSON list)."""
    delivery_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    """Random spread applied to retry delays (fraction, 0 to <1)."""
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    """How long a worker holds a claimed delivery; must exceed the webhook timeout by 5 s."""
    delivery_batch_size: int = Field(default=100, ge=1, le=5000)
    """Deliveries a worker claims per poll."""
    delivery_concurrency: int = Field(default=64, ge=1, le=4096)
    """Deliveries a worker runs at once."""
    delivery_max_in_flight_per_endpoint: int = Field(default=16, ge=1)
    """Deliveries in flight to one webhook endpoint across all workers."""
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    """How often an idle worker looks for due deliveries."""
    delivery_flush_seconds: float = Field(default=0.01, ge=0)
    """How long finished delivery results are gathered before they are written together."""
    delivery_shutdown_seconds: float = Field(default=20.0, ge=0)
    """Grace period for in-flight deliveries when a worker stops."""
    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open an endpoint's circuit breaker."""
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    """First open period of a breaker; doubles on each trip."""
    breaker_max_cooldown_seconds: float = Field(default=600.0, gt=0)
    """Longest open period of a breaker."""
    endpoint_disable_after_seconds: float = Field(default=5 * 24 * 3600, gt=0)
    """An endpoint failing for this long is disabled."""
    events_retention_days: int = Field(default=30, ge=1)
    """Days delivered events and attempts are kept."""
    scheduler_enabled: bool = True
    """Run the periodic-job scheduler in this worker."""

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> Settings:
        # One message must never be in flight twice: a lease can only expire after
        # the attempt holding it has timed out, with margin for the completion write.
        if self.delivery_lease_seconds < self.webhooks_timeout_seconds + 5:
            raise ValueError(
                "delivery_lease_seconds must exceed webhooks_timeout_seconds by at least 5 s"
            )
        return self

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL (PostgreSQL is the only database)")
        return value

    @field_validator("ratelimit_default", "ratelimit_auth")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '10/minute': {value!r}") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml_path = os.environ.get("TRADEFLOW_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def media_path(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.home / "media"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


# Values never echoed in an error message; URLs are shown with their password masked.
_SECRET_FIELDS = frozenset({"master_key"})
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@]*@")


def setting_for(key: str) -> str | None:
    """The field a key of the environment, a TOML file or the init arguments sets."""
    if key in Settings.model_fields:
        return key
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and key in alias.choices:
            return name
        if alias == key:
            return name
    return None


def env_names(name: str) -> list[str]:
    """Every environment variable that sets field `name`, the canonical one first."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str) and c.isupper()]
    return [f"TRADEFLOW_{name.upper()}"]


def _shown(name: str | None, value: object) -> str:
    if name in _SECRET_FIELDS:
        return "a value that is not shown"
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\1:***@", value)
    return repr(value)


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    if not loc:  # a rule across several settings
        return f"settings: {err['msg']}"
    name = setting_for(str(loc[0]))
    if name is None or err["type"] == "extra_forbidden":
        return f"{loc[0]}: not a Tradeflow setting (got {_shown(None, err.get('input'))})"
    where = name + "".join(f"[{p}]" for p in loc[1:])
    return (
        f"{where} ({' or '.join(env_names(name))}): {err['msg']} "
        f"(got {_shown(name, err.get('input'))})"
    )


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings; a bad value raises `ConfigError` naming the setting,
    the environment variable(s) that set it, and the value (secrets are not shown)."""
    toml_path = os.environ.get("TRADEFLOW_CONFIG")
    if toml_path and not Path(toml_path).is_file():
        raise ConfigError(f"TRADEFLOW_CONFIG points at {toml_path!r}, which is not a file")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TRADEFLOW_CONFIG file {toml_path!r} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        sources = f" (environment and {toml_path})" if toml_path else ""
        problems = [_describe(err) for err in exc.errors()]
        raise ConfigError(f"invalid configuration{sources}:\n  " + "\n  ".join(problems)) from exc


def _default_text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def settings_markdown(names: list[str] | None = None) -> str:
    """The settings as a Markdown table (docs/configuration.md, README); a test keeps them equal."""
    rows = [
        "| Environment variable | Default | Description |",
        "|---|---|---|",
    ]
    for name in names or list(Settings.model_fields):
        field = Settings.model_fields[name]
        env = env_names(name)
        variable = f"`{env[0]}`" + "".join(f" (or `{alias}`)" for alias in env[1:])
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| {variable} | `{_default_text(field.default)}` | {description} |")
    return "\n".join(rows) + "\n"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


TABLE_START, TABLE_END = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"


def write_settings_table(path: Path) -> None:
    """Replace the table between the settings-table markers of a Markdown file."""
    text = path.read_text()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    path.write_text(head + TABLE_START + settings_markdown() + TABLE_END + tail)


if __name__ == "__main__":
    # `python -m tradeflow.config` prints the table; with a path, rewrites it in that file
    # (`python -m tradeflow.config docs/configuration.md`).
    import sys

    if len(sys.argv) > 1:
        write_settings_table(Path(sys.argv[1]))
    else:
        print(settings_markdown(), end="")
