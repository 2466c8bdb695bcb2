"""`/v1/connectors`, `/v1/sync-conflicts`, `/v1/reconciliations`."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.integrations import pull, runs, service
from tradeflow.integrations.models import (
    ConnectorInstance,
    ExternalRef,
    ReconciliationMismatch,
    ReconciliationRun,
    SyncConflict,
)
from tradeflow.integrations.plugins import available
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.integrations.schemas import (
    ConflictFieldOut,
    ConnectorIn,
    ConnectorKindOut,
    ConnectorOut,
    ConnectorPatch,
    ConnectorStatusOut,
    ExternalRefOut,
    MismatchOut,
    ReconciliationOut,
    ReplayIn,
    ReplayOut,
    ResolveIn,
    SyncConflictOut,
)
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams, paginate

router = APIRouter()
connectors = APIRouter(prefix="/connectors", tags=["connectors"])
conflicts = APIRouter(prefix="/sync-conflicts", tags=["connectors"])
reconciliations = APIRouter(prefix="/reconciliations", tags=["connectors"])

Read = Annotated[Principal, require_scopes("connectors:read")]
Write = Annotated[Principal, require_scopes("connectors:write")]


def _caller(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


async def _out(
    session: AsyncSession, instance: ConnectorInstance, request: Request
) -> ConnectorOut:
    status = await service.status(session, instance)
    plugin = available().get(instance.kind)
    return ConnectorOut(
        id=instance.id,
        kind=instance.kind,
        name=instance.name,
        enabled=instance.enabled,
        paused=instance.paused,
        config=service.masked_config(instance, request.app.state.keyring),
        capabilities=sorted(plugin.capabilities) if plugin else [],
        subscriber_id=instance.subscriber_id,
        created_at=instance.created_at,
        updated_at=instance.updated_at,
        status=ConnectorStatusOut(**dataclasses.asdict(status)),
    )


# -- connectors --------------------------------------------------------------------------------


@connectors.get("/kinds", response_model=list[ConnectorKindOut], responses=problems(401, 403))
async def list_kinds(principal: Read) -> list[ConnectorKindOut]:
    """Installed connector plugins (the `tradeflow.connectors` entry points) and their config."""
    return [
        ConnectorKindOut(
            kind=kind,
            title=plugin.title,
            capabilities=sorted(plugin.capabilities),
            event_types=list(plugin.event_types),
            secret_fields=plugin.config_model.secret_fields(),
            config_schema=plugin.config_model.model_json_schema(),
        )
        for kind, plugin in sorted(available().items())
    ]


@connectors.post(
    "", status_code=201, response_model=ConnectorOut, responses=problems(401, 403, 409, 422)
)
async def create_connector(
    body: ConnectorIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Enable a connector for this tenant. Secrets in `config` are encrypted at rest and never
    returned. Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    instance = await service.create_instance(
        session,
        principal.tenant_id,
        keyring=request.app.state.keyring,
        kind=body.kind,
        name=body.name,
        config=body.config,
        paused=body.paused,
        allow_private=request.app.state.settings.webhooks_allow_private,
    )
    out = await _out(session, instance, request)
    return await idem.save(
        201, out.model_dump(mode="json"), location=f"/v1/connectors/{instance.id}"
    )


@connectors.get("", response_model=Page[ConnectorOut], responses=problems(400, 401, 403))
async def list_connectors(
    request: Request,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    kind: Annotated[str | None, Query(max_length=60)] = None,
) -> Page[ConnectorOut]:
    """The tenant's connector instances with their status (healthy, degraded, failing, paused),
    lag, backlog and last error."""
    repo = IntegrationsRepository(session, principal.tenant_id)
    stmt = repo.instances_query()
    if kind:
        stmt = stmt.where(ConnectorInstance.kind == kind)
    rows, cursor = await paginate(session, stmt, page, order_by=[ConnectorInstance.id])
    return Page(items=[await _out(session, r, request) for r in rows], next_cursor=cursor)


@connectors.get("/{connector_id}", response_model=ConnectorOut, responses=problems(401, 403, 404))
async def get_connector(
    connector_id: uuid.UUID, request: Request, principal: Read, session: TenantSession
) -> ConnectorOut:
    """One connector instance with its status."""
    instance = await service.get_instance(session, principal.tenant_id, connector_id)
    return await _out(session, instance, request)


@connectors.patch(
    "/{connector_id}", response_model=ConnectorOut, responses=problems(401, 403, 404, 422)
)
async def update_connector(
    connector_id: uuid.UUID,
    body: ConnectorPatch,
    request: Request,
    principal: Write,
    session: TenantSession,
) -> ConnectorOut:
    """Replace the config (masked or omitted secrets keep their value) or enable/disable it."""
    instance = await service.update_instance(
        session,
        principal.tenant_id,
        connector_id,
        keyring=request.app.state.keyring,
        config=body.config,
        enabled=body.enabled,
        allow_private=request.app.state.settings.webhooks_allow_private,
    )
    return await _out(session, instance, request)


@connectors.post(
    "/{connector_id}/pause", response_model=ConnectorOut, responses=problems(401, 403, 404)
)
async def pause_connector(
    connector_id: uuid.UUID, request: Request, principal: Write, session: TenantSession
) -> ConnectorOut:
    """Hold sync work: events keep queueing for the connector and wait until it is resumed."""
    instance = await service.set_paused(session, principal.tenant_id, connector_id, paused=True)
    return await _out(session, instance, request)


@connectors.post(
    "/{connector_id}/resume", response_model=ConnectorOut, responses=problems(401, 403, 404)
)
async def resume_connector(
    connector_id: uuid.UUID, request: Request, principal: Write, session: TenantSession
) -> ConnectorOut:
    """Release held sync work; it runs in order from where it stopped."""
    instance = await service.set_paused(session, principal.tenant_id, connector_id, paused=False)
    return await _out(session, instance, request)


@connectors.post(
    "/{connector_id}/replay", response_model=ReplayOut, responses=problems(401, 403, 404, 422)
)
async def replay_connector(
    connector_id: uuid.UUID, body: ReplayIn, principal: Write, session: TenantSession
) -> ReplayOut:
    """Sync again every event since `since`: dead letters redriven, missed events delivered.
    Safe to repeat: every push looks the document up before creating it."""
    result = await service.replay(session, principal.tenant_id, connector_id, since=body.since)
    return ReplayOut(redriven=result.redriven, created=result.created)


@connectors.post(
    "/{connector_id}/pull",
    status_code=202,
    response_model=ConnectorOut,
    responses=problems(401, 403, 404, 409, 422),
)
async def pull_connector(
    connector_id: uuid.UUID, request: Request, principal: Write, session: TenantSession
) -> ConnectorOut:
    """Pull the connected system's changes now instead of at the next scheduled time.

    The pull is queued and a worker runs it within seconds (it calls the remote system,
    which never happens inside a request's transaction); follow `status.pull` of the
    connector (`requested`, `running`, `last_counts`, `last_error`). 409 when the connector
    is paused or disabled, 422 when it does not pull changes."""
    instance = await service.get_instance(session, principal.tenant_id, connector_id)
    service.check_pullable(instance, request.app.state.keyring)
    await pull.request_pull(session, instance)
    return await _out(session, instance, request)


@connectors.get(
    "/{connector_id}/external-ids",
    response_model=Page[ExternalRefOut],
    responses=problems(400, 401, 403, 404),
)
async def list_external_ids(
    connector_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    object_type: Annotated[str | None, Query(max_length=30)] = None,
    state: Annotated[Literal["pending", "synced", "conflict", "failed"] | None, Query()] = None,
    our_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[ExternalRefOut]:
    """The external-id map of a connector: our id ↔ their id, per document, with sync state."""
    await service.get_instance(session, principal.tenant_id, connector_id)
    stmt = IntegrationsRepository(session, principal.tenant_id).refs_query(connector_id)
    if object_type:
        stmt = stmt.where(ExternalRef.object_type == object_type)
    if state:
        stmt = stmt.where(ExternalRef.state == state)
    if our_id:
        stmt = stmt.where(ExternalRef.our_id == our_id)
    rows, cursor = await paginate(session, stmt, page, order_by=[ExternalRef.id])
    return Page(items=[ExternalRefOut.model_validate(r) for r in rows], next_cursor=cursor)


# -- conflicts ----------------------------------------------------------------------------------


def _conflict_out(c: SyncConflict) -> SyncConflictOut:
    return SyncConflictOut(
        id=c.id,
        connector_id=c.connector_id,
        object_type=c.object_type,
        object_id=c.our_id,
        external_id=c.external_id,
        remote_version=c.remote_version,
        fields=[ConflictFieldOut(**f) for f in c.fields],
        ours=c.ours,
        theirs=c.theirs,
        status=c.status,
        resolution=c.resolution,
        resolved_values=c.resolved_values,
        resolved_by=c.resolved_by,
        resolved_at=c.resolved_at,
        created_at=c.created_at,
    )


@conflicts.get("", response_model=Page[SyncConflictOut], responses=problems(400, 401, 403))
async def list_conflicts(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    status: Annotated[Literal["open", "resolving", "resolved"] | None, Query()] = None,
    connector_id: uuid.UUID | None = None,
    object_type: Annotated[str | None, Query(max_length=30)] = None,
) -> Page[SyncConflictOut]:
    """The conflict queue: documents both sides changed, with both versions, newest first."""
    stmt = IntegrationsRepository(session, principal.tenant_id).conflicts_query()
    if status:
        stmt = stmt.where(SyncConflict.status == status)
    if connector_id:
        stmt = stmt.where(SyncConflict.connector_id == connector_id)
    if object_type:
        stmt = stmt.where(SyncConflict.object_type == object_type)
    rows, cursor = await paginate(session, stmt, page, order_by=[SyncConflict.id])
    return Page(items=[_conflict_out(r) for r in rows], next_cursor=cursor)


@conflicts.get("/{conflict_id}", response_model=SyncConflictOut, responses=problems(401, 403, 404))
async def get_conflict(
    conflict_id: uuid.UUID, principal: Read, session: TenantSession
) -> SyncConflictOut:
    """One conflict with the base, our and their value of each conflicting field."""
    return _conflict_out(await service.get_conflict(session, principal.tenant_id, conflict_id))


@conflicts.post(
    "/{conflict_id}/resolve",
    response_model=SyncConflictOut,
    responses=problems(401, 403, 404, 409, 422),
)
async def resolve_conflict(
    conflict_id: uuid.UUID, body: ResolveIn, principal: Write, session: TenantSession
) -> SyncConflictOut:
    """Take ours, take theirs, or an edited merge (`values`). The connector writes the decision
    to the remote from the worker (status `resolving`, then `resolved`)."""
    conflict = await service.resolve_conflict(
        session,
        principal.tenant_id,
        conflict_id,
        resolution=body.resolution,
        values=body.values,
        actor=_caller(principal),
    )
    return _conflict_out(conflict)


# -- reconciliations -----------------------------------------------------------------------------


@reconciliations.get("", response_model=Page[ReconciliationOut], responses=problems(400, 401, 403))
async def list_reconciliations(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    status: Annotated[Literal["running", "clean", "mismatches", "failed"] | None, Query()] = None,
) -> Page[ReconciliationOut]:
    """Reconciliation runs, newest first, with mismatch counts by kind."""
    stmt = IntegrationsRepository(session, principal.tenant_id).runs_query()
    if status:
        stmt = stmt.where(ReconciliationRun.status == status)
    rows, cursor = await paginate(session, stmt, page, order_by=[ReconciliationRun.id])
    return Page(items=[ReconciliationOut.model_validate(r) for r in rows], next_cursor=cursor)


@reconciliations.post(
    "", status_code=202, response_model=ReconciliationOut, responses=problems(401, 403, 409, 422)
)
async def run_reconciliation(
    request: Request,
    principal: Write,
    session: TenantSession,
    grace_seconds: Annotated[
        float, Query(ge=0, le=86400, description="Leave out what changed this recently.")
    ] = 0,
) -> JSONResponse:
    """Run a three-way reconciliation now (processor settlements ↔ ledger ↔ connected systems).

    The run is queued and a worker performs it within seconds (it calls remote systems, which
    never happens inside a request's transaction); poll the `Location` until its status is
    `clean`, `mismatches` or `failed`. Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    run = await runs.queue_run(
        session, principal.tenant_id, trigger="manual", grace_seconds=grace_seconds
    )
    out = ReconciliationOut.model_validate(run)
    return await idem.save(
        202, out.model_dump(mode="json"), location=f"/v1/reconciliations/{run.id}"
    )


@reconciliations.get(
    "/{reconciliation_id}", response_model=ReconciliationOut, responses=problems(401, 403, 404)
)
async def get_reconciliation(
    reconciliation_id: uuid.UUID, principal: Read, session: TenantSession
) -> ReconciliationOut:
    """One run: status, what was compared, mismatches by kind."""
    run = await IntegrationsRepository(session, principal.tenant_id).run(reconciliation_id)
    if run is None:
        raise service.ReconciliationNotFound(f"No reconciliation {reconciliation_id}.")
    return ReconciliationOut.model_validate(run)


@reconciliations.get(
    "/{reconciliation_id}/mismatches",
    response_model=Page[MismatchOut],
    responses=problems(400, 401, 403, 404),
)
async def list_mismatches(
    reconciliation_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    kind: Annotated[str | None, Query(max_length=60)] = None,
) -> Page[MismatchOut]:
    """The mismatches one run found, filterable by kind."""
    repo = IntegrationsRepository(session, principal.tenant_id)
    if await repo.run(reconciliation_id) is None:
        raise service.ReconciliationNotFound(f"No reconciliation {reconciliation_id}.")
    stmt = repo.mismatches_query(reconciliation_id)
    if kind:
        stmt = stmt.where(ReconciliationMismatch.kind == kind)
    rows, cursor = await paginate(session, stmt, page, order_by=[ReconciliationMismatch.id])
    return Page(items=[MismatchOut.model_validate(r) for r in rows], next_cursor=cursor)


router.include_router(connectors)
router.include_router(conflicts)
router.include_router(reconciliations)
