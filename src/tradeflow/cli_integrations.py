"""Operator commands for connectors: `tradeflow connectors …`.

    tradeflow connectors kinds
    tradeflow connectors list   -t demo
    tradeflow connectors status -t demo erp
    tradeflow connectors pause  -t demo erp      (and resume)
    tradeflow connectors replay -t demo erp --since 2026-11-01T00:00:00Z
    tradeflow connectors pull   -t demo erp      (pull remote changes now)
    tradeflow connectors conflicts -t demo [--status open]
    tradeflow connectors resolve -t demo <conflict id> ours|theirs
    tradeflow connectors reconcile -t demo

A connector is named by its id or its name. Every command runs in the
tenant's own session (row-level security applies) against the configured
database; `reconcile` runs the three-way check here and now and prints its
mismatches by kind, and `pull` pulls the remote's changes here and now.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.cli_admin import _run, _tenant_id, err, out
from tradeflow.config import Settings
from tradeflow.db import Database

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id or slug.")]
ConnectorArg = Annotated[str, typer.Argument(help="Connector id or name.")]

connectors_app = typer.Typer(
    help="Connectors to ERP/accounting systems: status, pause/resume/replay, conflicts, "
    "reconciliation.",
    no_args_is_help=True,
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _tenant_work(
    tenant: str, fn: Callable[[AsyncSession, uuid.UUID, Database, Settings], Awaitable[Any]]
) -> Any:
    async def work(db: Database, settings: Settings) -> Any:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            await s.commit()
        async with db.tenant_session(tenant_id) as session:
            result = await fn(session, tenant_id, db, settings)
            await session.commit()
        return result

    return _run(work)


async def _instance(session: AsyncSession, tenant_id: uuid.UUID, ref: str) -> Any:
    from tradeflow.integrations import service
    from tradeflow.integrations.repository import IntegrationsRepository

    repo = IntegrationsRepository(session, tenant_id)
    try:
        return await service.get_instance(session, tenant_id, uuid.UUID(ref))
    except ValueError:
        found = await repo.instance_by_name(ref)
        if found is None:
            err.print(f"[bold red]error[/]: no connector {ref!r} in this tenant")
            raise typer.Exit(1) from None
        return found


_STATE_STYLE = {
    "healthy": "green",
    "degraded": "yellow",
    "failing": "red",
    "paused": "cyan",
    "disabled": "dim",
}


def _status_table(rows: list[tuple[Any, Any]]) -> Table:
    table = Table(
        "id",
        "name",
        "kind",
        "state",
        "lag (s)",
        "backlog",
        "conflicts",
        "last pull",
        "pulled/applied/conflicted",
        "last error",
        title="connectors",
    )
    for instance, status in rows:
        style = _STATE_STYLE.get(status.state, "")
        pull = status.pull
        counts = pull.last_counts if pull else {}
        table.add_row(
            str(instance.id),
            instance.name,
            instance.kind,
            f"[{style}]{status.state}[/]" if style else status.state,
            f"{status.lag_seconds:.0f}",
            str(status.backlog),
            str(status.open_conflicts),
            _when(pull.last_pull_at) if pull else "—",
            (
                f"{counts.get('pulled', 0)}/{counts.get('applied', 0)}/"
                f"{counts.get('conflicted', 0)}"
                if pull and pull.last_pull_at
                else "—"
            ),
            (status.last_error or "—")[:60],
        )
    return table


@connectors_app.command("kinds")
def kinds() -> None:
    """Installed connector plugins (entry points of `tradeflow.connectors`)."""
    from tradeflow.integrations.plugins import available

    table = Table("kind", "title", "capabilities", "secrets", title="connector kinds")
    for kind, plugin in sorted(available().items()):
        table.add_row(
            kind,
            plugin.title,
            ", ".join(sorted(plugin.capabilities)),
            ", ".join(plugin.config_model.secret_fields()) or "—",
        )
    out.print(table)


@connectors_app.command("list")
def list_connectors(tenant: TenantOpt) -> None:
    """The tenant's connectors with state, lag, backlog, open conflicts and last error."""

    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> Table:
        from tradeflow.integrations import service
        from tradeflow.integrations.repository import IntegrationsRepository

        instances = await session.execute(
            IntegrationsRepository(session, tenant_id).instances_query()
        )
        rows = [(i, await service.status(session, i)) for i in instances.scalars()]
        return _status_table(rows)

    out.print(_tenant_work(tenant, fn))


@connectors_app.command("status")
def status(tenant: TenantOpt, connector: ConnectorArg) -> None:
    """One connector's state, lag, backlog, documents by sync state and last error."""

    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> None:
        from tradeflow.integrations import service

        instance = await _instance(session, tenant_id, connector)
        st = await service.status(session, instance)
        out.print(_status_table([(instance, st)]))
        out.print(f"documents: {st.documents or '{}'}")
        out.print(f"last success: {_when(st.last_success_at)}  breaker: {st.breaker_state}")
        if st.last_error:
            out.print(f"last error ({_when(st.last_error_at)}): {st.last_error}")
        if st.pull is not None:
            _print_pull(st.pull)

    _tenant_work(tenant, fn)


def _print_pull(pull: Any) -> None:
    out.print(
        f"pull: last {_when(pull.last_pull_at)}  last success {_when(pull.last_success_at)}  "
        f"next {_when(pull.next_pull_at)}  counts {pull.last_counts or '{}'}"
    )
    if pull.last_error:
        out.print(f"last pull error ({_when(pull.last_error_at)}): {pull.last_error}")
    for problem in pull.problems[:5]:
        out.print(
            f"  {problem.get('object_type')} {problem.get('external_id')}: {problem.get('reason')}"
        )


@connectors_app.command("pull")
def pull(tenant: TenantOpt, connector: ConnectorArg) -> None:
    """Pull the connected system's changes now, here (not through the worker); prints counts.

    Exit code 1 when the pull failed (the error is recorded on the connector too)."""

    async def work(db: Database, settings: Settings) -> None:
        from tradeflow.integrations import pull as pulling
        from tradeflow.integrations import service
        from tradeflow.kit.keyring import load_keyring

        keyring = load_keyring(settings)
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            await s.commit()
        async with db.tenant_session(tenant_id) as session:
            instance = await _instance(session, tenant_id, connector)
            await session.commit()
        try:
            service.check_pullable(instance, keyring)
        except Exception as exc:
            err.print(f"[bold red]error[/]: {exc}")
            raise typer.Exit(1) from None
        result = await pulling.pull_instance(db, keyring, instance)
        if result.status == "running":
            err.print(f"[yellow]{instance.name}: a pull is already running[/]")
            raise typer.Exit(1)
        table = Table("count", "value", title=f"{instance.name}: pull {result.status}")
        for name in pulling.COUNT_NAMES:
            table.add_row(name, str(result.counts.get(name, 0)))
        out.print(table)
        if result.error:
            err.print(f"[bold red]error[/]: {result.error}")
            raise typer.Exit(1)

    _run(work)


def _set_paused(tenant: str, connector: str, paused: bool) -> None:
    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> None:
        from tradeflow.integrations import service

        instance = await _instance(session, tenant_id, connector)
        await service.set_paused(session, tenant_id, instance.id, paused=paused)
        out.print(f"[green]{instance.name} {'paused' if paused else 'resumed'}[/]")

    _tenant_work(tenant, fn)


@connectors_app.command("pause")
def pause(tenant: TenantOpt, connector: ConnectorArg) -> None:
    """Hold the connector's sync work (events queue up and wait)."""
    _set_paused(tenant, connector, True)


@connectors_app.command("resume")
def resume(tenant: TenantOpt, connector: ConnectorArg) -> None:
    """Release held sync work."""
    _set_paused(tenant, connector, False)


@connectors_app.command("replay")
def replay(
    tenant: TenantOpt,
    connector: ConnectorArg,
    since: Annotated[str, typer.Option("--since", help="ISO 8601 time with a zone.")],
) -> None:
    """Sync again every event since a time (dead letters redriven, missed events delivered)."""
    when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-01-01T00:00:00Z")

    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> None:
        from tradeflow.integrations import service

        instance = await _instance(session, tenant_id, connector)
        result = await service.replay(session, tenant_id, instance.id, since=when)
        counts = f"{result.redriven} redriven, {result.created} new deliveries"
        out.print(f"[green]{instance.name}[/]: {counts}")

    _tenant_work(tenant, fn)


@connectors_app.command("conflicts")
def conflicts(
    tenant: TenantOpt,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="open, resolving or resolved.")
    ] = "open",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 50,
) -> None:
    """The sync-conflict queue with both sides of each conflicting field."""

    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> Table:
        from tradeflow.integrations.models import SyncConflict
        from tradeflow.integrations.repository import IntegrationsRepository

        stmt = IntegrationsRepository(session, tenant_id).conflicts_query()
        if status_filter:
            stmt = stmt.where(SyncConflict.status == status_filter)
        rows = (await session.execute(stmt.order_by(SyncConflict.id.desc()).limit(limit))).scalars()
        table = Table(
            "id", "document", "remote", "field: ours ≠ theirs", "status", title="conflicts"
        )
        for c in rows:
            fields = "; ".join(f"{f['field']}: {f['ours']!r} ≠ {f['theirs']!r}" for f in c.fields)
            table.add_row(
                str(c.id), f"{c.object_type} {c.our_id}", c.external_id or "—", fields, c.status
            )
        return table

    out.print(_tenant_work(tenant, fn))


@connectors_app.command("resolve")
def resolve(
    tenant: TenantOpt,
    conflict_id: Annotated[str, typer.Argument(help="The conflict's id.")],
    resolution: Annotated[str, typer.Argument(help="ours or theirs (merges: use the API).")],
) -> None:
    """Resolve a conflict by taking our values or theirs; the worker applies it remotely."""
    if resolution not in ("ours", "theirs"):
        raise typer.BadParameter("ours or theirs")
    choice: Literal["ours", "theirs"] = "ours" if resolution == "ours" else "theirs"

    async def fn(session: AsyncSession, tenant_id: uuid.UUID, *_: Any) -> None:
        from tradeflow.integrations import service

        conflict = await service.resolve_conflict(
            session,
            tenant_id,
            uuid.UUID(conflict_id),
            resolution=choice,
            values=None,
            actor="cli",
        )
        out.print(f"[green]conflict {conflict.id}: {choice}[/] (applied by the worker)")

    _tenant_work(tenant, fn)


@connectors_app.command("reconcile")
def reconcile(
    tenant: TenantOpt,
    grace: Annotated[
        float, typer.Option("--grace", min=0, help="Leave out what changed this many seconds ago.")
    ] = 0.0,
) -> None:
    """Run the three-way reconciliation now and print mismatches by kind."""

    async def work(db: Database, settings: Settings) -> None:
        from tradeflow.integrations.reconciliation import Reconciler
        from tradeflow.integrations.repository import IntegrationsRepository
        from tradeflow.kit.keyring import load_keyring

        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            await s.commit()
        reconciler = Reconciler(
            db=db, keyring=load_keyring(settings), tenant_id=tenant_id, grace_seconds=grace
        )
        run_id = await reconciler.run("manual")
        async with db.tenant_session(tenant_id) as session:
            run = await IntegrationsRepository(session, tenant_id).run(run_id)
            await session.commit()
        assert run is not None
        colour = "green" if run.status == "clean" else "red"
        out.print(f"[{colour}]{run.status}[/]: {run.mismatch_count} mismatch(es)  run {run.id}")
        table = Table("checked", "count", title="compared")
        for name, count in sorted(run.checked.items()):
            table.add_row(name, str(count))
        out.print(table)
        if run.counts:
            kinds = Table("kind", "count", title="mismatches")
            for name, count in sorted(run.counts.items()):
                kinds.add_row(name, str(count))
            out.print(kinds)
        if run.error:
            err.print(f"[bold red]error[/]: {run.error}")
        if run.status != "clean":
            raise typer.Exit(1)

    _run(work)


def register(app: typer.Typer) -> None:
    app.add_typer(connectors_app, name="connectors")
