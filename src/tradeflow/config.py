"""Settings: `TRADEFLOW_*` environment variables and an optional TOML file.

Precedence, highest first: init arguments, environment, `.env`, the TOML file
named by `TRADEFLOW_CONFIG`, defaults. Validation happens once at start-up and
a bad value is reported by name (see `load_settings`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

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
    )

    home: Path = Field(default=Path("var"), description="Folder for embedded data and keys.")
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
    db_max_overflow: int = Field(default=10, ge=0, le=200)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    otel_service_name: str = "tradeflow"

    master_key: str | None = Field(
        default=None,
        description="Base64 AES-256 master key(s), 'kid:key' comma-separated, first active.",
    )
    master_key_file: Path | None = None

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)
    jwt_issuer: str = "tradeflow"

    ratelimit_default: str = "600/minute"
    ratelimit_auth: str = "10/minute"
    ratelimit_enabled: bool = True
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    login_ip_max_failures: int = Field(default=50, ge=1)

    webhooks_allow_private: bool = False
    # Event delivery (docs/delivery.md). Retry delays are the waits after each failed
    # attempt, so the attempt budget is their count + 1 (Svix's schedule by default).
    webhooks_retry_schedule: list[int] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000], min_length=0, max_length=30
    )
    webhooks_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    webhooks_max_response_bytes: int = Field(default=65_536, ge=0)
    webhooks_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    handler_retry_schedule: list[int] = Field(
        default=[1, 5, 30, 120, 600, 1800, 3600], min_length=0, max_length=30
    )
    delivery_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_batch_size: int = Field(default=100, ge=1, le=5000)
    delivery_concurrency: int = Field(default=64, ge=1, le=4096)
    delivery_max_in_flight_per_endpoint: int = Field(default=16, ge=1)
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    delivery_flush_seconds: float = Field(default=0.01, ge=0)
    delivery_shutdown_seconds: float = Field(default=20.0, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    breaker_max_cooldown_seconds: float = Field(default=600.0, gt=0)
    endpoint_disable_after_seconds: float = Field(default=5 * 24 * 3600, gt=0)
    events_retention_days: int = Field(default=30, ge=1)
    scheduler_enabled: bool = True

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
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings, turning pydantic's error into one naming each value."""
    toml_path = os.environ.get("TRADEFLOW_CONFIG")
    if toml_path and not Path(toml_path).is_file():
        raise ConfigError(f"TRADEFLOW_CONFIG points at {toml_path!r}, which is not a file")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"TRADEFLOW_{name.upper()}"
            problems.append(f"{env}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
