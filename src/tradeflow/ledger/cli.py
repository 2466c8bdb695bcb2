"""Operator commands for the books: `tradeflow ledger …`.

    tradeflow ledger accounts      -t demo
    tradeflow ledger trial-balance -t demo [--as-of 2026-11-01T00:00:00Z] [--currency EUR]
    tradeflow ledger entries       -t demo [--source-event-id …] [--limit 20]
    tradeflow ledger verify        -t demo        (exit 1 when the books do not balance)

Each command runs in the tenant's own session (row-level security applies) against the
configured database; `--json` prints the API's JSON instead of a table.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.cli import print_json
from tradeflow.cli_admin import _run, _tenant_id, err, out
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.pagination import PageRequest
from tradeflow.ledger import service
from tradeflow.ledger.repository import EntryFilters
from tradeflow.ledger.schemas import UtcDatetime

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id or slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

ledger_app = typer.Typer(
    help="The double-entry ledger: chart, trial balance, entries, verification.",
    no_args_is_help=True,
)

_MOMENT = TypeAdapter(UtcDatetime)


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return _MOMENT.validate_python(value)
    except ValidationError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time with a zone") from exc


def _in_tenant(tenant: str, fn: Callable[[AsyncSession, uuid.UUID], Awaitable[Any]]) -> Any:
    async def work(db: Database, settings: Settings) -> Any:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
        async with db.tenant_session(tenant_id) as session:
            result = await fn(session, tenant_id)
            await session.commit()  # the chart may have been seeded on first use
        return result

    return _run(work)


def _money(value: int) -> str:
    return f"{value:,}"


@ledger_app.command("accounts")
def accounts(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """The chart of accounts."""

    async def fn(session: AsyncSession, tenant_id: uuid.UUID) -> Any:
        return await service.list_accounts(
            session, tenant_id=tenant_id, page=PageRequest(limit=200)
        )

    page = _in_tenant(tenant, fn)
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    table = Table("code", "name", "type", "normal", "system key")
    for a in page.items:
        table.add_row(a.code, a.name, a.type.value, a.normal_balance.value, a.system_key or "")
    out.print(table)


@ledger_app.command("trial-balance")
def trial_balance(
    tenant: TenantOpt,
    as_of: Annotated[str | None, typer.Option(help="ISO 8601 time with a zone.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Debit and credit totals per account and currency, and whether they balance."""
    moment = _moment(as_of)

    async def fn(session: AsyncSession, tenant_id: uuid.UUID) -> Any:
        return await service.trial_balance(
            session, tenant_id=tenant_id, as_of=moment, currency=currency
        )

    tb = _in_tenant(tenant, fn)
    if as_json:
        print_json(tb.model_dump(mode="json"))
        return
    table = Table("currency", "code", "account", "debit", "credit", "balance")
    for r in tb.accounts:
        table.add_row(
            r.currency,
            r.code,
            r.name,
            _money(r.debit_minor),
            _money(r.credit_minor),
            _money(r.balance_minor),
        )
    for t in tb.totals:
        mark = "[green]balanced[/]" if t.balanced else "[bold red]UNBALANCED[/]"
        table.add_row(
            t.currency,
            "",
            f"[bold]total[/] {mark}",
            _money(t.debit_minor),
            _money(t.credit_minor),
            "",
        )
    out.print(table)


@ledger_app.command("entries")
def entries(
    tenant: TenantOpt,
    source_event_id: Annotated[
        str | None, typer.Option(help="Only the entry that booked this event.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The newest journal entries with their lines."""
    try:
        source = uuid.UUID(source_event_id) if source_event_id else None
    except ValueError as exc:
        raise typer.BadParameter(f"{source_event_id!r} is not a UUID") from exc

    async def fn(session: AsyncSession, tenant_id: uuid.UUID) -> Any:
        return await service.list_entries(
            session,
            tenant_id=tenant_id,
            filters=EntryFilters(source_event_id=source),
            page=PageRequest(limit=limit),
        )

    page = _in_tenant(tenant, fn)
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    table = Table("posted at", "entry", "kind", "description", "account", "debit", "credit")
    for e in page.items:
        for n, line in enumerate(e.lines):
            table.add_row(
                e.posted_at.strftime("%Y-%m-%d %H:%M:%S") if n == 0 else "",
                str(e.id) if n == 0 else "",
                e.kind.value if n == 0 else "",
                e.description if n == 0 else "",
                line.account_code,
                _money(line.debit_minor) if line.debit_minor else "",
                _money(line.credit_minor) if line.credit_minor else "",
            )
    out.print(table)


@ledger_app.command("verify")
def verify(tenant: TenantOpt) -> None:
    """Re-add every entry and the trial balance; exit 1 if anything does not balance."""

    async def fn(session: AsyncSession, tenant_id: uuid.UUID) -> Any:
        return await service.verify_books(session, tenant_id=tenant_id)

    check = _in_tenant(tenant, fn)
    totals = ", ".join(
        f"{t.currency} {_money(t.debit_minor)} = {_money(t.credit_minor)}"
        for t in check.trial_balance.totals
    )
    if check.ok:
        out.print(
            f"[green]books balance[/]: {check.entries} entries, {check.lines} lines"
            + (f"; {totals}" if totals else "")
        )
        return
    err.print(
        f"[bold red]books do not balance[/]: {len(check.unbalanced_entry_ids)} unbalanced "
        f"entries {[str(i) for i in check.unbalanced_entry_ids[:10]]}; {totals}"
    )
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
