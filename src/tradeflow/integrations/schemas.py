"""Request and response bodies of `/v1/connectors`, `/v1/sync-conflicts`, `/v1/reconciliations`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradeflow.integrations.service import Health


class ConnectorKindOut(BaseModel):
    kind: str
    title: str
    capabilities: list[str]
    event_types: list[str]
    secret_fields: list[str]
    config_schema: dict[str, Any] = Field(description="JSON Schema of the `config` object.")


class ConnectorIn(BaseModel):
    """A connector instance: a plugin (`kind`) with this tenant's configuration."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=60, examples=["rest_erp"])
    name: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$", examples=["erp"]
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The plugin's settings (see `GET /v1/connectors/kinds`); secrets are "
        "stored encrypted and shown masked.",
    )
    paused: bool = Field(default=False, description="Create paused (no sync until resumed).")


class ConnectorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        default=None,
        description="A whole new config; a secret given as `********` (or left out) keeps "
        "its stored value.",
    )
    enabled: bool | None = None


class PullStatusOut(BaseModel):
    last_pull_at: datetime | None = Field(description="When the last pull started.")
    last_success_at: datetime | None
    next_pull_at: datetime | None = Field(description="The next scheduled pull (its cron).")
    running: bool
    requested: bool = Field(description="A pull was asked for and has not run yet.")
    last_counts: dict[str, int] = Field(
        description="The last pull: pulled, unchanged, applied, conflicted, ignored, unknown, "
        "created, rejected."
    )
    totals: dict[str, int] = Field(description="The same counts over every pull.")
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    problems: list[dict[str, Any]] = Field(
        description="The latest pulled records not applied (unknown or rejected), newest first."
    )


class ConnectorStatusOut(BaseModel):
    state: Health = Field(description="healthy, degraded, failing, paused or disabled.")
    lag_seconds: float = Field(
        description="Age of the oldest document not yet in sync (or of the failure streak)."
    )
    backlog: int = Field(description="Documents waiting to be synced (pending or failed).")
    documents: dict[str, int] = Field(description="External-id map entries by state.")
    open_conflicts: int
    last_error: str | None = Field(description="The latest error, pushing or pulling.")
    last_error_at: datetime | None
    last_success_at: datetime | None
    breaker_state: str | None = Field(description="The delivery engine's circuit breaker.")
    pull: PullStatusOut | None = Field(
        default=None, description="Pulling changes (connectors that pull; else null)."
    )


class ConnectorOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    enabled: bool
    paused: bool
    config: dict[str, Any] = Field(description="Settings with secrets masked as `********`.")
    capabilities: list[str]
    subscriber_id: uuid.UUID | None = Field(
        description="Its subscriber in the delivery engine (`/v1/deliveries?endpoint_id=`)."
    )
    created_at: datetime
    updated_at: datetime
    status: ConnectorStatusOut


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Sync again every event since this time (ISO 8601).")


class ReplayOut(BaseModel):
    redriven: int = Field(description="Failed or dead deliveries made due again.")
    created: int = Field(description="Missed events given a delivery.")


class ExternalRefOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connector_id: uuid.UUID
    object_type: str
    our_id: str
    external_id: str | None
    remote_version: str | None
    state: str
    attempts: int
    last_error: str | None
    synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConflictFieldOut(BaseModel):
    field: str
    base: Any = Field(description="The value both sides last agreed on.")
    ours: Any
    theirs: Any


class SyncConflictOut(BaseModel):
    id: uuid.UUID
    connector_id: uuid.UUID
    object_type: str
    object_id: str = Field(description="Our id of the document.")
    external_id: str | None
    remote_version: str | None
    fields: list[ConflictFieldOut]
    ours: dict[str, Any] = Field(description="Our document as the connector maps it.")
    theirs: dict[str, Any] = Field(description="Their record when the conflict was found.")
    status: Literal["open", "resolving", "resolved"]
    resolution: str | None
    resolved_values: dict[str, Any] | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ResolveIn(BaseModel):
    """`ours` writes our values to the remote; `theirs` keeps theirs; `merge` writes `values`."""

    model_config = ConfigDict(extra="forbid")

    resolution: Literal["ours", "theirs", "merge"]
    values: dict[str, Any] | None = Field(
        default=None, description="For `merge`: a value for each conflicting field."
    )


class ReconciliationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    trigger: str
    status: str = Field(description="running, clean, mismatches or failed.")
    started_at: datetime
    finished_at: datetime | None
    mismatch_count: int
    counts: dict[str, int] = Field(description="Mismatches by kind.")
    checked: dict[str, int] = Field(description="How many items of each kind were compared.")
    error: str | None


class MismatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    run_id: uuid.UUID
    kind: str
    connector_id: uuid.UUID | None
    object_type: str
    object_id: str
    detail: dict[str, Any]
