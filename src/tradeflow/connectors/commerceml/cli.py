"""`tradeflow commerceml …`: the exchange for operators without 1C's HTTP exchange.

    tradeflow commerceml import        -t demo --instance 1c import.xml offers.xml
    tradeflow commerceml export-orders -t demo --instance 1c --out orders.xml [--ack]
    tradeflow commerceml ack           -t demo --instance 1c
    tradeflow commerceml exchanges     -t demo --instance 1c

`import` applies files exactly as `mode=import` does (same audit, same rules), with a
progress bar. `export-orders` writes the orders 1C has not acknowledged; they stay
unacknowledged (and come again) until `--ack` or `ack` says 1C loaded the file.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tradeflow.cli_admin import _run, _tenant_id, err, out
from tradeflow.config import Settings
from tradeflow.db import Database

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id or slug.")]
InstanceOpt = Annotated[
    str, typer.Option("--instance", "-i", help="The CommerceML connector's id or name.")
]

commerceml_app = typer.Typer(
    help="CommerceML 2 (1C:Enterprise): import catalog/offers files, export orders, the audit.",
    no_args_is_help=True,
)


async def _target(db: Database, settings: Settings, tenant: str, instance: str) -> Any:
    from tradeflow.connectors.commerceml import operations
    from tradeflow.kit.keyring import load_keyring

    async with db.system_session() as s:
        tenant_id = await _tenant_id(s, tenant)
        await s.commit()
    connector_id = await _connector_id(db, tenant_id, instance)
    target = await operations.resolve(db, load_keyring(settings), connector_id)
    if target is None or target.tenant_id != tenant_id:
        err.print(f"[bold red]error[/]: {instance!r} is not an enabled CommerceML connector")
        raise typer.Exit(1)
    return target


async def _connector_id(db: Database, tenant_id: uuid.UUID, ref: str) -> uuid.UUID:
    from tradeflow.integrations import external_ids

    with contextlib.suppress(ValueError):
        return uuid.UUID(ref)
    async with db.tenant_session(tenant_id) as session:
        found = await external_ids.instance_id_by_name(session, tenant_id, ref)
        await session.commit()
    if found is None:
        err.print(f"[bold red]error[/]: no connector {ref!r} in this tenant")
        raise typer.Exit(1)
    return found


@commerceml_app.command("import")
def import_files(
    tenant: TenantOpt,
    instance: InstanceOpt,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Apply import.xml / offers.xml files in order (bad rows are reported, not fatal)."""
    from tradeflow.connectors.commerceml import operations

    async def work(db: Database, settings: Settings) -> int:
        target = await _target(db, settings, tenant, instance)
        failed = 0
        with Progress(console=Console(stderr=True)) as bar:
            for path in files:
                task = bar.add_task(path.name, total=None)

                def progress(total: int, task: Any = task) -> Callable[[], None]:
                    bar.update(task, total=total)
                    return lambda: bar.advance(task)

                row = await operations.run_import(
                    db,
                    target,
                    path.read_bytes(),
                    filename=path.name,
                    source="cli",
                    progress=progress,
                )
                _print_exchange(row)
                failed += row.status != "success"
        return failed

    if _run(work):
        raise typer.Exit(1)


def _print_exchange(row: Any) -> None:
    colour = "green" if row.status in ("success", "acknowledged") else "red"
    counts = ", ".join(f"{k} {v}" for k, v in sorted(row.counts.items()) if v) or "—"
    out.print(f"[{colour}]{row.filename or row.mode}: {row.status}[/]  {counts}")
    if row.error:
        out.print(f"  error: {row.error}")
    for problem in row.problems[:20]:
        out.print(f"  {problem['id']}: {problem['reason']}")
    if len(row.problems) > 20:
        out.print(f"  … {len(row.problems) - 20} more (GET …/commerceml/exchanges/{row.id})")


@commerceml_app.command("export-orders")
def export_orders(
    tenant: TenantOpt,
    instance: InstanceOpt,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Where to write the XML.")],
    ack: Annotated[
        bool, typer.Option("--ack", help="Mark them received by 1C now (else: `ack` later).")
    ] = False,
) -> None:
    """Write the orders 1C has not acknowledged as a CommerceML document."""
    from tradeflow.connectors.commerceml import operations

    async def work(db: Database, settings: Settings) -> None:
        target = await _target(db, settings, tenant, instance)
        body, row = await operations.query_orders(db, target, source="cli", session_id=None)
        out_file.write_bytes(body)
        out.print(f"[green]{row.counts.get('orders', 0)} order(s)[/] written to {out_file}")
        if ack:
            await operations.acknowledge(db, target, session_id=None)
            out.print("acknowledged")

    _run(work)


@commerceml_app.command("ack")
def acknowledge(tenant: TenantOpt, instance: InstanceOpt) -> None:
    """1C loaded the last exported orders: do not send them again until they change."""
    from tradeflow.connectors.commerceml import operations

    async def work(db: Database, settings: Settings) -> None:
        target = await _target(db, settings, tenant, instance)
        row = await operations.acknowledge(db, target, session_id=None)
        out.print("nothing to acknowledge" if row is None else f"acknowledged {row.id}")

    _run(work)


@commerceml_app.command("exchanges")
def exchanges(
    tenant: TenantOpt,
    instance: InstanceOpt,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
) -> None:
    """The latest exchanges: imports with their counts and problems, order queries."""
    from tradeflow.connectors.commerceml.models import Exchange
    from tradeflow.connectors.commerceml.repository import CommerceMLRepository

    async def work(db: Database, settings: Settings) -> Table:
        target = await _target(db, settings, tenant, instance)
        async with db.tenant_session(target.tenant_id) as session:
            stmt = CommerceMLRepository(session, target.tenant_id).exchanges_query(
                target.connector_id
            )
            rows = (await session.execute(stmt.order_by(Exchange.id.desc()).limit(limit))).scalars()
            table = Table(
                "when",
                "type",
                "mode",
                "file",
                "status",
                "counts",
                "problems",
                title="commerceml exchanges",
            )
            for r in rows:
                table.add_row(
                    r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    r.exchange_type,
                    r.mode,
                    r.filename or "—",
                    r.status,
                    ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items()) if v) or "—",
                    str(len(r.problems)) if not r.error else r.error[:60],
                )
            await session.commit()
        return table

    out.print(_run(work))


def register(app: typer.Typer) -> None:
    app.add_typer(commerceml_app, name="commerceml")
