"""Integrations use cases: connector instances, their status and control, the conflict queue.

Each connector instance owns one subscriber in the events engine (kind
`connector`), so its sync work gets the engine's retries, dead letters,
ordering per aggregate, circuit breaker, pause and replay. Services never
commit; the request or the worker does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.errors import Conflict, NotFound, UnprocessableEntity
from tradeflow.events import service as events_service
from tradeflow.events.outbox import publish
from tradeflow.integrations import secrets
from tradeflow.integrations.events import ConnectorResyncRequested, SyncConflictResolved
from tradeflow.integrations.models import ConnectorInstance, SyncConflict
from tradeflow.integrations.plugins import (
    Capability,
    ConnectorConfig,
    ConnectorPlugin,
    DocumentConnector,
    JournalConnector,
    available,
    plugin_for,
)
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

SUBSCRIBER_KIND = "connector"
# A connector that has failed this many times in a row without a success is "failing".
FAILING_AFTER = 5


class ConnectorNotFound(NotFound):
    slug, title = "connector-not-found", "Connector not found"


class UnknownConnectorKind(UnprocessableEntity):
    slug, title = "unknown-connector-kind", "Unknown connector kind"


class InvalidConnectorConfig(UnprocessableEntity):
    slug, title = "invalid-connector-config", "Invalid connector configuration"


class ConnectorNameTaken(Conflict):
    slug, title = "connector-name-taken", "Connector name taken"


class ConflictNotFound(NotFound):
    slug, title = "sync-conflict-not-found", "Sync conflict not found"


class ConflictAlreadyResolved(Conflict):
    slug, title = "sync-conflict-resolved", "Sync conflict already resolved"


class ReconciliationNotFound(NotFound):
    slug, title = "reconciliation-not-found", "Reconciliation not found"


class ConnectorCannotPull(UnprocessableEntity):
    slug, title = "connector-cannot-pull", "Connector does not pull changes"


class ConnectorInactive(Conflict):
    slug, title = "connector-inactive", "Connector paused or disabled"


class InvalidResolution(UnprocessableEntity):
    slug, title = "invalid-resolution", "Invalid conflict resolution"


# -- instances ---------------------------------------------------------------------------------


def validate_config(plugin: type[ConnectorPlugin], raw: dict[str, Any]) -> ConnectorConfig:
    try:
        return plugin.config_model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {
                "field": "config." + ".".join(str(p) for p in err["loc"]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise InvalidConnectorConfig(summary, errors=errors) from exc


def check_target(config: ConnectorConfig, *, allow_private: bool) -> None:
    """A connector's `base_url` obeys the same SSRF rule as webhook targets (no private or
    loopback address unless the operator allows them: `TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE`)."""
    from tradeflow.webhooks.ssrf import InvalidWebhookUrl, validate_url

    url = getattr(config, "base_url", None)
    if not isinstance(url, str):
        return
    try:
        validate_url(url, allow_private=allow_private)
    except InvalidWebhookUrl as exc:
        raise InvalidConnectorConfig(
            f"config.base_url: {exc.detail}",
            errors=[{"field": "config.base_url", "message": exc.detail, "type": "ssrf"}],
        ) from exc


def _plugin(kind: str) -> type[ConnectorPlugin]:
    plugin = plugin_for(kind)
    if plugin is None:
        raise UnknownConnectorKind(
            f"No connector plugin {kind!r}; available: {', '.join(sorted(available())) or 'none'}.",
            field="kind",
        )
    return plugin


async def create_instance(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    keyring: Keyring,
    kind: str,
    name: str,
    config: dict[str, Any],
    paused: bool = False,
    allow_private: bool = False,
) -> ConnectorInstance:
    plugin = _plugin(kind)
    validated = validate_config(plugin, config)
    check_target(validated, allow_private=allow_private)
    repo = IntegrationsRepository(session, tenant_id)
    if await repo.instance_by_name(name) is not None:
        raise ConnectorNameTaken(f"A connector named {name!r} exists.", field="name")
    instance_id = uuid7()
    plain, secret_values = secrets.split(validated)
    subscriber = await events_service.create_subscriber(
        session,
        tenant_id,
        kind=SUBSCRIBER_KIND,
        name=f"connector:{name}",
        event_types=list(plugin.event_types),
    )
    if paused:
        await events_service.set_paused(session, tenant_id, subscriber.id, paused=True)
    instance = ConnectorInstance(
        id=instance_id,
        tenant_id=tenant_id,
        kind=kind,
        name=name,
        config=plain,
        secrets_ciphertext=secrets.seal(keyring, instance_id, secret_values),
        enabled=True,
        paused=paused,
        subscriber_id=subscriber.id,
        consecutive_failures=0,
    )
    repo.add(instance)
    await session.flush()
    if issubclass(plugin, JournalConnector):
        # A journal starts with everything already booked, not only what comes next.
        await request_resync(session, instance, since=None)
    return instance


async def request_resync(
    session: AsyncSession, instance: ConnectorInstance, *, since: datetime | None
) -> None:
    """Ask the worker to export the journal again (to this connector only)."""
    await publish(
        session,
        ConnectorResyncRequested(connector_id=instance.id, since=since),
        tenant_id=instance.tenant_id,
        aggregate_id=instance.id,
        target_subscriber_id=instance.subscriber_id,
    )


async def get_instance(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, *, lock: bool = False
) -> ConnectorInstance:
    found = await IntegrationsRepository(session, tenant_id).instance(instance_id, lock=lock)
    if found is None:
        raise ConnectorNotFound(f"No connector {instance_id}.")
    return found


async def update_instance(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    instance_id: uuid.UUID,
    *,
    keyring: Keyring,
    config: dict[str, Any] | None = None,
    enabled: bool | None = None,
    allow_private: bool = False,
) -> ConnectorInstance:
    """Change the config (secrets left out keep their stored value) or the enabled flag."""
    instance = await get_instance(session, tenant_id, instance_id, lock=True)
    plugin = _plugin(instance.kind)
    if config is not None:
        stored = secrets.unseal(keyring, instance.id, instance.secrets_ciphertext)
        merged = {**stored, **{k: v for k, v in config.items() if v != secrets.MASK}}
        validated = validate_config(plugin, merged)
        check_target(validated, allow_private=allow_private)
        plain, secret_values = secrets.split(validated)
        instance.config = plain
        instance.secrets_ciphertext = secrets.seal(keyring, instance.id, secret_values)
    if enabled is not None and enabled != instance.enabled:
        instance.enabled = enabled
        if instance.subscriber_id is not None:
            await events_service.update_subscriber(
                session, tenant_id, instance.subscriber_id, enabled=enabled
            )
    instance.updated_at = utcnow()
    await session.flush()
    return instance


def open_plugin(instance: ConnectorInstance, keyring: Keyring) -> ConnectorPlugin:
    """The instance's plugin with its decrypted config (worker-side; never in a response)."""
    plugin = _plugin(instance.kind)
    config = secrets.load(
        plugin.config_model, keyring, instance.id, instance.config, instance.secrets_ciphertext
    )
    return plugin(config)


def check_pullable(instance: ConnectorInstance, keyring: Keyring) -> None:
    """Raise unless the instance can pull now: its plugin pulls changes (and is configured
    to), and it is enabled and not paused."""
    plugin = open_plugin(instance, keyring)
    if not isinstance(plugin, DocumentConnector) or not plugin.supports_pull():
        raise ConnectorCannotPull(f"{instance.name} ({instance.kind}) does not pull changes.")
    if not instance.enabled or instance.paused:
        state = "disabled" if not instance.enabled else "paused"
        raise ConnectorInactive(f"{instance.name} is {state}; enable or resume it first.")


def masked_config(instance: ConnectorInstance, keyring: Keyring) -> dict[str, Any]:
    plugin = plugin_for(instance.kind)
    if plugin is None:
        return dict(instance.config)
    return secrets.masked(
        plugin.config_model, instance.config, instance.secrets_ciphertext, keyring, instance.id
    )


async def set_paused(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, *, paused: bool
) -> ConnectorInstance:
    """Pausing holds sync work in the engine (deliveries wait); resuming releases it."""
    instance = await get_instance(session, tenant_id, instance_id, lock=True)
    instance.paused = paused
    instance.updated_at = utcnow()
    if instance.subscriber_id is not None:
        await events_service.set_paused(session, tenant_id, instance.subscriber_id, paused=paused)
    await session.flush()
    return instance


@dataclass(frozen=True, slots=True)
class ReplayResult:
    redriven: int
    created: int


async def replay(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, *, since: datetime
) -> ReplayResult:
    """Sync again everything since `since`: dead letters redriven, missed events delivered.

    Safe by construction: every push looks the document up first, so a replay
    updates or links, and never creates a second copy at the remote.
    """
    instance = await get_instance(session, tenant_id, instance_id)
    if instance.subscriber_id is None:
        return ReplayResult(0, 0)
    result = await events_service.recover(session, tenant_id, instance.subscriber_id, since=since)
    plugin = plugin_for(instance.kind)
    if plugin is not None and issubclass(plugin, JournalConnector):
        # Events are kept for a while only; the ledger keeps every entry.
        await request_resync(session, instance, since=since)
    return ReplayResult(redriven=result.redriven, created=result.created)


Health = Literal["healthy", "degraded", "failing", "paused", "disabled"]


@dataclass(frozen=True, slots=True)
class PullStatus:
    """The pull side of a connector that pulls changes (`Capability.PULL_CHANGES`)."""

    last_pull_at: datetime | None
    last_success_at: datetime | None
    next_pull_at: datetime | None
    running: bool
    requested: bool
    last_counts: dict[str, int]
    totals: dict[str, int]
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    problems: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    state: Health
    lag_seconds: float
    backlog: int
    documents: dict[str, int]  # external refs by state
    open_conflicts: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    breaker_state: str | None
    pull: PullStatus | None = None


async def pull_status(session: AsyncSession, instance: ConnectorInstance) -> PullStatus | None:
    """None when the connector does not pull changes."""
    plugin = plugin_for(instance.kind)
    if plugin is None or Capability.PULL_CHANGES not in plugin.capabilities:
        return None
    row = await IntegrationsRepository(session, instance.tenant_id).pull_state(instance.id)
    if row is None:
        return PullStatus(None, None, None, False, False, {}, {}, None, None, 0, [])
    now = utcnow()
    return PullStatus(
        last_pull_at=row.last_started_at,
        last_success_at=row.last_success_at,
        next_pull_at=row.next_pull_at,
        running=row.running_until is not None and row.running_until > now,
        requested=row.requested_at is not None,
        last_counts=dict(row.last_counts),
        totals=dict(row.totals),
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        consecutive_failures=row.consecutive_failures,
        problems=list(row.problems),
    )


async def status(session: AsyncSession, instance: ConnectorInstance) -> ConnectorStatus:
    """healthy / degraded / failing / paused, with lag, backlog and the last error.

    Degraded: recent failures (pushing or pulling), an open breaker, or conflicts waiting;
    failing: `FAILING_AFTER` failures in a row with no success in between.
    """
    repo = IntegrationsRepository(session, instance.tenant_id)
    docs = await repo.ref_counts(instance.id)
    conflicts = await repo.open_conflict_count(instance.id)
    oldest = await repo.oldest_unsynced(instance.id)
    info = None
    if instance.subscriber_id is not None:
        found = await events_service.subscribers(
            session, instance.tenant_id, [instance.subscriber_id]
        )
        info = found.get(instance.subscriber_id)
    pull = await pull_status(session, instance)
    failures = max(
        instance.consecutive_failures,
        info.consecutive_failures if info else 0,
        pull.consecutive_failures if pull else 0,
    )
    state: Health
    if not instance.enabled or (info is not None and not info.enabled):
        state = "disabled"
    elif instance.paused:
        state = "paused"
    elif failures >= FAILING_AFTER:
        state = "failing"
    elif failures > 0 or conflicts or (info is not None and info.breaker_state != "closed"):
        state = "degraded"
    else:
        state = "healthy"
    now = utcnow()
    lag = 0.0
    if oldest is not None:
        lag = max(lag, (now - oldest).total_seconds())
    if info is not None and info.failing_since is not None:
        lag = max(lag, (now - info.failing_since).total_seconds())
    backlog = sum(n for s, n in docs.items() if s in ("pending", "failed"))
    # The most recent error of either direction (each side's own is under `pull` / here).
    last_error, last_error_at = instance.last_error, instance.last_error_at
    pulled_at = pull.last_error_at if pull is not None else None
    if (
        pull is not None
        and pulled_at is not None
        and (last_error_at is None or pulled_at > last_error_at)
    ):
        last_error, last_error_at = f"pull: {pull.last_error}", pulled_at
    return ConnectorStatus(
        state=state,
        lag_seconds=round(lag, 3),
        backlog=backlog,
        documents=docs,
        open_conflicts=conflicts,
        last_error=last_error,
        last_error_at=last_error_at,
        last_success_at=instance.last_success_at,
        breaker_state=info.breaker_state if info else None,
        pull=pull,
    )


# -- conflicts ---------------------------------------------------------------------------------


async def get_conflict(
    session: AsyncSession, tenant_id: uuid.UUID, conflict_id: uuid.UUID, *, lock: bool = False
) -> SyncConflict:
    found = await IntegrationsRepository(session, tenant_id).conflict(conflict_id, lock=lock)
    if found is None:
        raise ConflictNotFound(f"No sync conflict {conflict_id}.")
    return found


async def resolve_conflict(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    conflict_id: uuid.UUID,
    *,
    resolution: Literal["ours", "theirs", "merge"],
    values: dict[str, Any] | None,
    actor: str,
) -> SyncConflict:
    """Decide a conflict; the connector writes the decision to the remote from the worker."""
    conflict = await get_conflict(session, tenant_id, conflict_id, lock=True)
    if conflict.status != "open":
        raise ConflictAlreadyResolved(
            f"The conflict is already {conflict.status} ({conflict.resolution})."
        )
    names = [f["field"] for f in conflict.fields]
    if resolution == "ours":
        chosen = {f["field"]: f["ours"] for f in conflict.fields}
    elif resolution == "theirs":
        chosen = {f["field"]: f["theirs"] for f in conflict.fields}
    else:
        if not values:
            raise InvalidResolution(
                "A merge needs `values` for the conflicting fields.", field="values"
            )
        unknown = sorted(set(values) - set(names))
        missing = sorted(set(names) - set(values))
        if unknown or missing:
            raise InvalidResolution(
                f"`values` must name exactly the conflicting fields {names}"
                + (f"; unknown: {unknown}" if unknown else "")
                + (f"; missing: {missing}" if missing else ""),
                field="values",
            )
        chosen = dict(values)
    conflict.status = "resolving"
    conflict.resolution = resolution
    conflict.resolved_values = chosen
    conflict.resolved_by = actor[:100]
    conflict.resolved_at = utcnow()
    instance = await get_instance(session, tenant_id, conflict.connector_id)
    await publish(
        session,
        SyncConflictResolved(
            conflict_id=conflict.id,
            connector_id=conflict.connector_id,
            object_type=conflict.object_type,
            object_id=conflict.our_id,
            resolution=resolution,
        ),
        tenant_id=tenant_id,
        aggregate_id=conflict.id,
        target_subscriber_id=instance.subscriber_id,
    )
    await session.flush()
    return conflict
