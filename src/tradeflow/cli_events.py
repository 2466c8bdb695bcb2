"""Operator commands for events: `tradeflow events …`, `tradeflow deliveries …`, `tradeflow jobs …`.

They run through a system session (every tenant) against the configured
database; `--tenant` narrows to one tenant. Bulk replays commit in chunks with
a progress bar, so an interrupted run can simply be repeated.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradeflow.cli_admin import _run, _tenant_id, err, out
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import repository as repo
from tradeflow.events import service
from tradeflow.events.repository import DeliveryFilter

TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant id or slug.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="Rows to show.")]

events_app = typer.Typer(help="The outbox: events and their catalogue.", no_args_is_help=True)
deliveries_app = typer.Typer(
    help="Deliveries to webhook endpoints and handlers: logs, dead letters, replay.",
    no_args_is_help=True,
)
jobs_app = typer.Typer(help="Scheduled (periodic) jobs.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-01-01T00:00:00Z")
    return parsed


# -- events ---------------------------------------------------------------------------------------
@events_app.command("list")
def events_list(
    tenant: TenantOpt = None,
    type: Annotated[str | None, typer.Option("--type", help="Exact event type.")] = None,
    limit: LimitOpt = 20,
) -> None:
    """The newest events."""

    async def work(db: Database, _: Settings) -> Table:
        async with db.system_session() as s:
            tid = await _tenant_id(s, tenant) if tenant else None
            rows = await repo.recent_events(s, tenant_id=tid, type=type, limit=limit)
        table = Table("id", "type", "aggregate", "seq", "occurred", "dispatched", title="events")
        for e in rows:
            table.add_row(
                str(e.id),
                f"{e.type} v{e.version}",
                f"{e.aggregate_type}:{e.aggregate_id}",
                str(e.sequence),
                _when(e.occurred_at),
                _when(e.dispatched_at),
            )
        return table

    out.print(_run(work))


@events_app.command("catalogue")
def events_catalogue(
    write: Annotated[
        Path | None, typer.Option("--write", help="Update this Markdown file.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Fail if --write's file is stale.")
    ] = False,
) -> None:
    """Print (or write into docs/events.md) the catalogue generated from the event types."""
    from tradeflow.events.catalogue import load_event_modules, render_catalogue, replace_catalogue

    load_event_modules()
    catalogue = render_catalogue()
    if write is None:
        typer.echo(catalogue)
        return
    current = write.read_text() if write.exists() else ""
    updated = replace_catalogue(current, catalogue)
    if check:
        if updated != current:
            err.print(
                f"[bold red]{write} is stale[/]: run `tradeflow events catalogue --write {write}`"
            )
            raise typer.Exit(1)
        out.print(f"[green]{write} is up to date[/]")
        return
    write.write_text(updated)
    out.print(f"[green]wrote[/] {write}")


# -- deliveries -----------------------------------------------------------------------------------
@deliveries_app.command("list")
def deliveries_list(
    tenant: TenantOpt = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e", help="Subscriber id.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered, dead, cancelled")] = None,
    event_type: Annotated[str | None, typer.Option("--type")] = None,
    limit: LimitOpt = 20,
) -> None:
    """The newest deliveries with their last outcome."""

    async def work(db: Database, _: Settings) -> Table:
        async with db.system_session() as s:
            tid = await _tenant_id(s, tenant) if tenant else None
            rows = await repo.recent_deliveries(
                s,
                DeliveryFilter(
                    subscriber_id=uuid.UUID(endpoint) if endpoint else None,
                    status=status,
                    event_type=event_type,
                ),
                tenant_id=tid,
                limit=limit,
            )
        table = Table(
            "id",
            "event type",
            "to",
            "status",
            "tries",
            "last code",
            "next / done",
            "error",
            title="deliveries",
        )
        colours = {"delivered": "green", "dead": "red", "pending": "yellow"}
        for d, kind, name in rows:
            done = d.delivered_at or d.dead_at
            table.add_row(
                str(d.id),
                d.event_type,
                f"{kind}:{name}"[:40],
                f"[{colours.get(d.status, 'white')}]{d.status}[/]",
                str(d.attempts),
                str(d.last_status_code or "—"),
                _when(done) if done else _when(d.next_attempt_at),
                (d.last_error or "").splitlines()[0][:40] if d.last_error else "",
            )
        return table

    out.print(_run(work))


@deliveries_app.command("show")
def deliveries_show(delivery_id: uuid.UUID) -> None:
    """One delivery with every attempt."""

    async def work(db: Database, _: Settings) -> Table:
        async with db.system_session() as s:
            tid = await repo.tenant_of_delivery(s, delivery_id)
            if tid is None:
                raise service.DeliveryNotFound(f"No delivery {delivery_id}.")
            r = repo.EventsRepository(s, tid)
            d = await r.get_delivery(delivery_id)
            attempts = await r.attempts(delivery_id)
        assert d is not None
        table = Table(
            "#",
            "started",
            "outcome",
            "code",
            "ms",
            "error",
            title=f"delivery {d.id} · {d.event_type} · {d.status}",
        )
        for a in attempts:
            table.add_row(
                str(a.attempt),
                _when(a.started_at),
                a.outcome,
                str(a.status_code or "—"),
                f"{a.duration_ms:.1f}",
                (a.error or "").splitlines()[0][:60] if a.error else "",
            )
        return table

    out.print(_run(work))


@deliveries_app.command("redeliver")
def deliveries_redeliver(delivery_id: uuid.UUID) -> None:
    """Send one delivery again now (same webhook-id)."""

    async def work(db: Database, _: Settings) -> str:
        async with db.system_session() as s:
            tid = await repo.tenant_of_delivery(s, delivery_id)
            if tid is None:
                raise service.DeliveryNotFound(f"No delivery {delivery_id}.")
            d = await service.redeliver(s, tid, delivery_id)
            await s.commit()
            return d.status

    status = _run(work)
    out.print(f"[green]redelivery queued[/] {delivery_id} (status {status})")


@deliveries_app.command("dead-letters")
def deliveries_dead_letters(tenant: TenantOpt = None, limit: LimitOpt = 50) -> None:
    """Dead letters: deliveries that used their whole retry budget."""
    deliveries_list(tenant=tenant, endpoint=None, status="dead", event_type=None, limit=limit)


@deliveries_app.command("redrive")
def deliveries_redrive(
    tenant: TenantOpt = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e")] = None,
    event_type: Annotated[str | None, typer.Option("--type")] = None,
    since: Annotated[str | None, typer.Option(help="ISO-8601, e.g. 2026-01-01T00:00:00Z")] = None,
    chunk: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
) -> None:
    """Retry dead letters with a fresh budget, in committed chunks, with progress."""

    async def work(db: Database, _: Settings) -> int:
        async with db.system_session() as s:
            tid = await _tenant_id(s, tenant) if tenant else None
            targets = await repo.dead_letter_ids(
                s,
                DeliveryFilter(
                    subscriber_id=uuid.UUID(endpoint) if endpoint else None,
                    event_type=event_type,
                    since=_parse_since(since),
                ),
                tenant_id=tid,
            )
        by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
        for did, t in targets:
            by_tenant.setdefault(t, []).append(did)
        done = 0
        columns = (TextColumn("redriving"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("redrive", total=len(targets))
            for t, ids in by_tenant.items():
                for i in range(0, len(ids), chunk):
                    part = ids[i : i + chunk]
                    async with db.system_session() as s:
                        moved = await repo.EventsRepository(s, t).reschedule(
                            DeliveryFilter(), statuses=("dead",), reset_attempts=True, ids=part
                        )
                        await s.commit()
                    done += len(moved)
                    progress.advance(task, len(part))
        return done

    n = _run(work)
    out.print(f"[green]{n} dead letter(s) queued for delivery[/]")


@deliveries_app.command("recover")
def deliveries_recover(
    endpoint: Annotated[uuid.UUID, typer.Argument(help="Webhook endpoint (subscriber) id.")],
    since: Annotated[str, typer.Option(help="ISO-8601, e.g. 2026-01-01T00:00:00Z")],
) -> None:
    """Resend what an endpoint failed or missed since a time."""

    async def work(db: Database, _: Settings) -> service.RecoverResult:
        async with db.system_session() as s:
            tid = await repo.tenant_of_subscriber(s, endpoint)
            if tid is None:
                raise service.SubscriberNotFound(f"No tenant endpoint {endpoint}.")
            since_at = _parse_since(since)
            assert since_at is not None
            result = await service.recover(s, tid, endpoint, since=since_at)
            await s.commit()
            return result

    r = _run(work)
    out.print(f"[green]recovering[/]: {r.redriven} redriven, {r.created} missed event(s) queued")


def _set_paused(endpoint: uuid.UUID, paused: bool) -> None:
    async def work(db: Database, _: Settings) -> None:
        async with db.system_session() as s:
            tid = await repo.tenant_of_subscriber(s, endpoint)
            if tid is None:
                raise service.SubscriberNotFound(f"No tenant endpoint {endpoint}.")
            await service.set_paused(s, tid, endpoint, paused=paused)
            await s.commit()

    _run(work)
    out.print(f"[green]{'paused' if paused else 'resumed'}[/] {endpoint}")


@deliveries_app.command("pause")
def deliveries_pause(endpoint: uuid.UUID) -> None:
    """Hold an endpoint's deliveries."""
    _set_paused(endpoint, True)


@deliveries_app.command("resume")
def deliveries_resume(endpoint: uuid.UUID) -> None:
    """Release an endpoint's held deliveries."""
    _set_paused(endpoint, False)


@deliveries_app.command("endpoints")
def deliveries_endpoints(tenant: TenantOpt = None) -> None:
    """Subscribers (webhook endpoints and handlers) with their health and counts."""

    async def work(db: Database, _: Settings) -> Table:
        async with db.system_session() as s:
            tid = await _tenant_id(s, tenant) if tenant else None
            rows = await repo.all_subscribers(s, tenant_id=tid)
        table = Table(
            "id",
            "kind",
            "name",
            "state",
            "breaker",
            "fails",
            "pending",
            "delivered",
            "dead",
            title="subscribers",
        )
        for sub, counts in rows:
            info = service.SubscriberInfo.of(sub)
            state = (
                ("disabled: " + (info.disabled_reason or ""))
                if not info.enabled
                else ("paused" if info.paused else "active")
            )
            table.add_row(
                str(sub.id),
                sub.kind,
                sub.name[:40],
                state,
                info.breaker_state,
                str(sub.consecutive_failures),
                str(counts.get("pending", 0)),
                str(counts.get("delivered", 0)),
                str(counts.get("dead", 0)),
            )
        return table

    out.print(_run(work))


@deliveries_app.command("stats")
def deliveries_stats() -> None:
    """Backlog, age of the oldest due delivery, dead letters, breakers (as in /metrics)."""
    from tradeflow.events import metrics
    from tradeflow.events.worker import refresh_gauges

    async def work(db: Database, _: Settings) -> Table:
        await refresh_gauges(db)
        table = Table("measure", "value", title="delivery")
        table.add_row("undispatched events", f"{metrics.UNDISPATCHED._value.get():.0f}")
        table.add_row("due deliveries (backlog)", f"{metrics.BACKLOG._value.get():.0f}")
        table.add_row("oldest due (s)", f"{metrics.OLDEST_DUE_AGE._value.get():.1f}")
        table.add_row("dead letters", f"{metrics.DEAD_LETTER_COUNT._value.get():.0f}")
        for state in ("closed", "half_open", "open", "paused", "disabled"):
            value = metrics.BREAKERS.labels(state)._value.get()
            table.add_row(f"endpoints {state}", f"{value:.0f}")
        return table

    out.print(_run(work))


# -- jobs -----------------------------------------------------------------------------------------
@jobs_app.command("list")
def jobs_list() -> None:
    """Scheduled jobs: cron, next run, last run and error."""

    async def work(db: Database, _: Settings) -> Table:
        async with db.system_session() as s:
            rows = await repo.list_jobs(s)
        table = Table(
            "job",
            "cron",
            "next run",
            "last run",
            "status",
            "ms",
            "runs",
            "failures",
            "last error",
            title="scheduled jobs",
        )
        for j in rows:
            table.add_row(
                j.name,
                j.cron,
                _when(j.next_run_at),
                _when(j.last_started_at),
                j.last_status or "—",
                f"{j.last_duration_ms or 0:.0f}",
                str(j.run_count),
                str(j.failure_count),
                (j.last_error or "").strip().splitlines()[-1][:50] if j.last_error else "",
            )
        return table

    out.print(_run(work))


@jobs_app.command("run")
def jobs_run(name: str) -> None:
    """Make a job due now; a running worker runs it once at its next scheduler pass."""

    async def work(db: Database, _: Settings) -> bool:
        async with db.system_session() as s:
            found = await repo.request_job_run(s, name)
            await s.commit()
            return found

    if not _run(work):
        err.print(f"[bold red]error[/]: no job {name!r} (see `tradeflow jobs list`)")
        raise typer.Exit(1)
    out.print(f"[green]{name} is due now[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.add_typer(deliveries_app, name="deliveries")
    app.add_typer(jobs_app, name="jobs")
