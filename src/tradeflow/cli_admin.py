"""Operator commands: `tradeflow tenants …`, `tradeflow users …`, `tradeflow keys rotate`.

They run against the configured database (embedded or `DATABASE_URL`) through
a system session, so they work before any user exists. Each command is one
transaction, except `keys rotate`, which commits once per batch so a large
table is never locked for long and an interrupted run can simply be repeated.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.errors import ProblemError
from tradeflow.identity.principal import BuyerRole, Role


def _console(*, stderr: bool = False) -> Console:
    # Built per call so the terminal width (or COLUMNS) is read when printing.
    return Console(stderr=stderr)


class _Lazy:
    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    def print(self, *objects: Any, **kw: Any) -> None:
        _console(stderr=self.stderr).print(*objects, **kw)


out = _Lazy(stderr=False)
err = _Lazy(stderr=True)
T = TypeVar("T")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id or slug.")]


def _settings() -> Settings:
    from tradeflow.cli import settings_or_exit

    return settings_or_exit()


def _run(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Open the configured database (migrating an embedded one), run `work`, close everything."""
    from tradeflow.runtime import migrate, open_database, prepare_home

    settings = _settings()
    prepare_home(settings)
    with open_database(settings) as handle:
        if handle.embedded is not None:
            migrate(settings, handle.url)

        async def main() -> T:
            db = Database.from_settings(settings, handle.url)
            try:
                return await work(db, settings)
            finally:
                await db.dispose()

        try:
            return asyncio.run(main())
        except ProblemError as exc:
            err.print(f"[bold red]error[/]: {exc.detail}")
            raise typer.Exit(1) from exc


async def _tenant_id(session: AsyncSession, ref: str) -> uuid.UUID:
    from tradeflow.identity.repository import CredentialRepository

    tenant = await CredentialRepository(session).tenant_by_ref(ref)
    if tenant is None:
        err.print(f"[bold red]error[/]: no tenant {ref!r} (give its id or slug)")
        raise typer.Exit(1)
    return tenant.id


async def _user_id(session: AsyncSession, tenant_id: uuid.UUID, email: str) -> uuid.UUID:
    from tradeflow.identity.repository import IdentityRepository

    user = await IdentityRepository(session, tenant_id).user_by_email(email)
    if user is None:
        err.print(f"[bold red]error[/]: no user {email!r} in this tenant")
        raise typer.Exit(1)
    return user.id


def _role(value: str) -> str:
    valid = {r.value for r in Role} | {r.value for r in BuyerRole}
    if value not in valid:
        raise typer.BadParameter(f"one of {', '.join(sorted(valid))}")
    return value


# -- tenants --------------------------------------------------------------------------------------
tenants_app = typer.Typer(help="Tenants (seller organisations).", no_args_is_help=True)


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    slug: Annotated[
        str | None, typer.Option(help="URL-safe short name (default: from the name).")
    ] = None,
    mfa_required: Annotated[
        bool, typer.Option("--mfa-required", help="Require MFA for staff.")
    ] = False,
) -> None:
    """Create a tenant."""
    from tradeflow.identity import service

    async def work(db: Database, _: Settings) -> tuple[uuid.UUID, str]:
        async with db.system_session() as s:
            tenant = await service.create_tenant(
                s, name=name, slug=slug, mfa_required_for_staff=mfa_required
            )
            await s.commit()
            return tenant.id, tenant.slug

    tenant_id, tenant_slug = _run(work)
    out.print(f"[green]created tenant[/] {tenant_slug}  id={tenant_id}")


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""
    from tradeflow.identity.repository import CredentialRepository

    async def work(db: Database, _: Settings) -> list[Any]:
        async with db.system_session() as s:
            return list(await CredentialRepository(s).tenants())

    rows = _run(work)
    table = Table(title="Tenants")
    for col in ("id", "slug", "name", "MFA required", "created"):
        table.add_column(col)
    for t in rows:
        table.add_row(
            str(t.id),
            t.slug,
            t.name,
            "yes" if t.mfa_required_for_staff else "no",
            t.created_at.isoformat(timespec="seconds"),
        )
    out.print(table)


# -- users ----------------------------------------------------------------------------------------
users_app = typer.Typer(help="Staff users of a tenant.", no_args_is_help=True)


@users_app.command("create")
def users_create(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option(help="Login e-mail.")],
    role: Annotated[str, typer.Option(help="owner, admin, sales, finance, operations, auditor.")],
    password: Annotated[
        str | None,
        typer.Option(
            help="12–128 characters; prompted for when omitted.",
            envvar="TRADEFLOW_NEW_USER_PASSWORD",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create a staff user."""
    from tradeflow.identity import service

    _role(role)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    secret: str = password

    async def work(db: Database, _: Settings) -> uuid.UUID:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            user = await service.create_user(
                s, tenant_id, email=email, password=secret, role=role, display_name=name
            )
            await s.commit()
            return user.id

    user_id = _run(work)
    out.print(f"[green]created user[/] {email.lower()} ({role})  id={user_id}")


@users_app.command("list")
def users_list(tenant: TenantOpt) -> None:
    """List a tenant's users."""
    from sqlalchemy import select

    from tradeflow.identity.models import User

    async def work(db: Database, _: Settings) -> list[User]:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            stmt = select(User).where(User.tenant_id == tenant_id).order_by(User.email)
            return list((await s.execute(stmt)).scalars())

    rows = _run(work)
    table = Table(title=f"Users of {tenant}")
    for col in ("id", "email", "kind", "role", "active", "MFA", "last login"):
        table.add_column(col)
    for u in rows:
        table.add_row(
            str(u.id),
            u.email,
            u.kind,
            u.role,
            "yes" if u.active else "no",
            "on" if u.mfa_enabled else "off",
            u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never",
        )
    out.print(table)


def _update_user(tenant: str, email: str, **changes: Any) -> None:
    from tradeflow.identity import service
    from tradeflow.identity.repository import IdentityRepository

    async def work(db: Database, _: Settings) -> None:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            user_id = await _user_id(s, tenant_id, email)
            await service.update_user(
                IdentityRepository(s, tenant_id), user_id, actor=None, **changes
            )
            await s.commit()

    _run(work)


@users_app.command("set-role")
def users_set_role(
    tenant: TenantOpt,
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
    role: Annotated[str, typer.Argument(help="The new role.")],
) -> None:
    """Change a user's role."""
    _update_user(tenant, email, role=_role(role))
    out.print(f"[green]{email}[/] is now {role}")


@users_app.command("disable")
def users_disable(
    tenant: TenantOpt, email: Annotated[str, typer.Argument(help="The user's e-mail.")]
) -> None:
    """Disable a user and end their sessions."""
    _update_user(tenant, email, active=False)
    out.print(f"[yellow]{email}[/] disabled; their sessions are revoked")


@users_app.command("enable")
def users_enable(
    tenant: TenantOpt, email: Annotated[str, typer.Argument(help="The user's e-mail.")]
) -> None:
    """Enable a disabled user again (also clears a lockout)."""
    _update_user(tenant, email, active=True)
    out.print(f"[green]{email}[/] enabled")


@users_app.command("reset-mfa")
def users_reset_mfa(
    tenant: TenantOpt, email: Annotated[str, typer.Argument(help="The user's e-mail.")]
) -> None:
    """Remove a user's TOTP and recovery codes (lost device); they enrol again at next login."""
    from tradeflow.identity import service
    from tradeflow.identity.repository import IdentityRepository

    async def work(db: Database, _: Settings) -> None:
        async with db.system_session() as s:
            tenant_id = await _tenant_id(s, tenant)
            user_id = await _user_id(s, tenant_id, email)
            await service.reset_mfa(IdentityRepository(s, tenant_id), user_id, actor=None)
            await s.commit()

    _run(work)
    out.print(f"[green]{email}[/]: MFA reset; sessions revoked")


# -- keys -----------------------------------------------------------------------------------------
keys_app = typer.Typer(help="The master key ring (encryption at rest).", no_args_is_help=True)


def import_all_models() -> None:
    """Import every context's `models` so each registers its encrypted columns."""
    import tradeflow

    for mod in pkgutil.walk_packages(tradeflow.__path__, "tradeflow."):
        if mod.name.endswith(".models"):
            importlib.import_module(mod.name)


async def rewrap_all(
    db: Database,
    keyring: Any,
    *,
    batch_size: int = 500,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Re-wrap every registered encrypted column under the active key, one transaction per batch.

    Returns rows re-wrapped per `table.column`. Rows already under the active
    key are skipped, so a repeated or interrupted run does only what is left.
    """
    from tradeflow.kit.keyring import ENCRYPTED_COLUMNS

    import_all_models()
    done: dict[str, int] = {}
    active_prefix = f"tfe1.{keyring.active}.%"
    for table, column in list(ENCRYPTED_COLUMNS):
        label = f"{table}.{column}"
        # Table and column names come from code (the registry), never from input.
        pending_sql = f"{column} IS NOT NULL AND {column} NOT LIKE :active"
        async with db.system_session() as s:
            total = (
                await s.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {pending_sql}"),  # noqa: S608
                    {"active": active_prefix},
                )
            ).scalar_one()
        done[label] = 0
        if on_progress:
            on_progress(label, 0, int(total))
        last_id: uuid.UUID | None = None
        while True:
            # FOR UPDATE (not SKIP LOCKED): a row a request is writing right now is waited
            # for, not skipped, so none is left under the old key; the lock is per batch.
            async with db.system_session() as s:
                rows = (
                    await s.execute(
                        text(
                            f"SELECT id, {column} AS value FROM {table} "  # noqa: S608
                            f"WHERE {pending_sql} AND (CAST(:last AS uuid) IS NULL OR id > :last) "
                            "ORDER BY id LIMIT :n FOR UPDATE"
                        ),
                        {"active": active_prefix, "last": last_id, "n": batch_size},
                    )
                ).all()
                if not rows:
                    break
                for row in rows:
                    await s.execute(
                        text(f"UPDATE {table} SET {column} = :new WHERE id = :id"),  # noqa: S608
                        {"new": keyring.rewrap(row.value), "id": row.id},
                    )
                await s.commit()
            last_id = rows[-1].id
            done[label] += len(rows)
            if on_progress:
                on_progress(label, done[label], int(total))
    return done


@keys_app.command("rotate")
def keys_rotate(
    rewrap_only: Annotated[
        bool,
        typer.Option(
            "--rewrap-only",
            help="Do not add a key; re-wrap everything under the ring's active key.",
        ),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction.")] = 500,
) -> None:
    """Add a master key (file-based ring) and re-wrap every stored secret's data key under it.

    With `TRADEFLOW_MASTER_KEY`, put the new key first (keeping the old ones),
    restart the processes, then run this to re-wrap.
    """
    from tradeflow.kit.keyring import load_keyring

    settings = _settings()
    keyring = load_keyring(settings)
    if not rewrap_only:
        if keyring.source is None:
            err.print(
                "[bold red]error[/]: the key ring comes from TRADEFLOW_MASTER_KEY, which this "
                "command cannot change. Put a new key first in it (keep the old ones), restart "
                "Tradeflow, then run `tradeflow keys rotate --rewrap-only`."
            )
            raise typer.Exit(2)
        kid = keyring.add_key()
        out.print(f"[green]added master key[/] {kid} to {keyring.source}; it is now active")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(label: str, n: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=max(total, 1))
                if total == 0:
                    progress.update(tasks[label], completed=1)
            progress.update(tasks[label], completed=n)

        async def work(db: Database, _: Settings) -> dict[str, int]:
            return await rewrap_all(db, keyring, batch_size=batch_size, on_progress=on_progress)

        done = _run(work)
    out.print(
        f"[green]re-wrapped {sum(done.values())} secret(s)[/] under key {keyring.active}. "
        "Keep the old key in the ring until running processes have restarted and the "
        "access tokens they signed have expired."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
