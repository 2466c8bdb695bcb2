"""`tradeflow sandbox …`: run the sandbox processor and switch its faults from the shell.

    tradeflow sandbox serve                 # API on :8100, control on :8101, own database
    tradeflow sandbox status
    tradeflow sandbox faults ACCOUNT --decline card_declined --delay 15 --webhooks duplicate
    tradeflow sandbox down | up             # close / reopen the API listener
    tradeflow sandbox flush ACCOUNT --reverse
    tradeflow sandbox charges ACCOUNT

`tradeflow up --demo` runs the same sandbox inside its process (`demo_tasks`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import structlog
import typer
from rich.console import Console
from rich.table import Table

from tradeflow.config import Settings

log = structlog.get_logger(__name__)
console = Console(stderr=True)
out = Console()  # what a script reads: JSON and tables on stdout
sandbox_app = typer.Typer(
    help="The in-tree sandbox payment processor: run it, inject faults, inspect it.",
    no_args_is_help=True,
)

Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
ControlUrl = Annotated[
    str | None,
    typer.Option(
        "--control-url",
        help="The sandbox's control plane (default: the demo's, else http://127.0.0.1:8101).",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")


def demo_tasks(settings: Settings, database_url: str, demo: bool) -> list[Task]:
    """The sandbox as a task of `tradeflow up --demo` (nothing without `--demo`).

    A sandbox that cannot start (say its port is taken) is reported and left out;
    it does not take the platform down with it.
    """
    if not demo:
        return []
    from tradeflow.sandbox.local import local_sandbox, sandbox_database_url
    from tradeflow.sandbox.server import SandboxServer

    where = local_sandbox(settings)

    async def run(stop: asyncio.Event) -> None:
        try:
            url = await asyncio.to_thread(sandbox_database_url, database_url)
            server = SandboxServer(
                url, host=where.host, port=where.port, control_port=where.control_port
            )
            console.print(
                f"[green]sandbox processor[/] on {where.api_url} (control {where.control_url})"
            )
            await server.run(stop)
        except Exception as exc:
            log.exception("sandbox_failed", api=where.api_url)
            console.print(f"[bold red]sandbox processor did not start[/]: {exc}")
            await stop.wait()

    return [run]


def _settings() -> Settings:
    from tradeflow.cli import settings_or_exit

    return settings_or_exit()


def _control_url(given: str | None) -> str:
    if given:
        return given
    from tradeflow.demo import credentials_path

    try:
        creds = json.loads(credentials_path(_settings()).read_text())
        return str(creds["sandbox_control_url"])
    except (OSError, ValueError, KeyError):
        return "http://127.0.0.1:8101"


def _call(given: str | None, fn: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    import httpx

    from tradeflow.sandbox.control import SandboxControl

    url = _control_url(given)

    async def go() -> Any:
        async with SandboxControl(url) as control:
            return await fn(control)

    try:
        return asyncio.run(go())
    except httpx.HTTPStatusError as exc:
        console.print(f"[bold red]sandbox said {exc.response.status_code}[/]: {exc.response.text}")
        raise typer.Exit(1) from exc
    except httpx.HTTPError as exc:
        console.print(f"[bold red]no sandbox control plane at {url}[/]: {exc!r}")
        raise typer.Exit(1) from exc


@sandbox_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8100,
    control_port: Annotated[int, typer.Option(help="Control-plane port.")] = 8101,
    database_url: Annotated[
        str | None,
        typer.Option(help="Its own database (default: `tradeflow_sandbox` on Tradeflow's server)."),
    ] = None,
) -> None:
    """Run the sandbox processor until Ctrl-C."""
    from tradeflow.runtime import _serve_until_signal, open_database, prepare_home
    from tradeflow.sandbox.local import sandbox_database_url
    from tradeflow.sandbox.server import SandboxServer

    settings = _settings()
    prepare_home(settings)
    with open_database(settings) as handle:
        url = database_url or sandbox_database_url(handle.url)
        server = SandboxServer(url, host=host, port=port, control_port=control_port)

        async def run(stop: asyncio.Event) -> None:
            await server.run(stop)

        console.print(
            f"[bold green]sandbox processor[/] API http://{host}:{port}, "
            f"control http://{host}:{control_port}  (Ctrl-C stops)"
        )
        asyncio.run(_serve_until_signal([run]))


@sandbox_app.command()
def status(control_url: ControlUrl = None) -> None:
    """Where the sandbox listens and whether its API is down."""
    state = _call(control_url, lambda c: c.status())
    out.print_json(json.dumps(state))


@sandbox_app.command()
def down(control_url: ControlUrl = None) -> None:
    """Close the API listener: callers get connection refused, webhooks pause."""
    _call(control_url, lambda c: c.down())
    console.print("[yellow]sandbox API is down[/]")


@sandbox_app.command()
def up(control_url: ControlUrl = None) -> None:
    """Reopen the API listener."""
    _call(control_url, lambda c: c.up())
    console.print("[green]sandbox API is up[/]")


@sandbox_app.command()
def account(
    webhook_url: Annotated[str | None, typer.Option(help="Where to send its webhooks.")] = None,
    name: Annotated[str, typer.Option(help="A label.")] = "sandbox merchant",
    control_url: ControlUrl = None,
) -> None:
    """Create a merchant account; prints its id, API key and webhook secret (shown once)."""
    created = _call(control_url, lambda c: c.create_account(name=name, webhook_url=webhook_url))
    out.print_json(json.dumps(created))


@sandbox_app.command()
def faults(
    account_id: Annotated[str, typer.Argument(help="The merchant account (acct_…).")],
    decline: Annotated[
        str | None, typer.Option(help="Decline every new charge with this code.")
    ] = None,
    delay: Annotated[
        float, typer.Option(help="Seconds to wait after committing before answering.")
    ] = 0,
    webhooks: Annotated[str, typer.Option(help="normal | duplicate | hold | off")] = "normal",
    bad_signature: Annotated[bool, typer.Option(help="Sign webhooks with a wrong key.")] = False,
    timestamp_offset: Annotated[
        int, typer.Option(help="Shift webhook timestamps by this many seconds.")
    ] = 0,
    control_url: ControlUrl = None,
) -> None:
    """Set an account's faults (all at once; omitted switches go back to normal)."""
    from tradeflow.sandbox.schemas import Faults

    try:
        wanted = Faults.model_validate(
            {
                "decline_code": decline,
                "delay_after_commit_seconds": delay,
                "webhooks": webhooks,
                "webhook_signature": "invalid" if bad_signature else "valid",
                "webhook_timestamp_offset_seconds": timestamp_offset,
            }
        )
    except ValueError as exc:
        console.print(f"[bold red]invalid faults[/]: {exc}")
        raise typer.Exit(2) from exc
    now = _call(control_url, lambda c: c.set_faults(account_id, wanted))
    out.print_json(now.model_dump_json())


@sandbox_app.command()
def flush(
    account_id: Annotated[str, typer.Argument(help="The merchant account (acct_…).")],
    reverse: Annotated[bool, typer.Option(help="Newest first.")] = False,
    control_url: ControlUrl = None,
) -> None:
    """Release webhooks held back by `--webhooks hold`."""
    order: Literal["fifo", "reverse"] = "reverse" if reverse else "fifo"
    released = _call(control_url, lambda c: c.flush(account_id, order))
    console.print(f"released {released} webhook(s), {order}")


@sandbox_app.command()
def charges(
    account_id: Annotated[str, typer.Argument(help="The merchant account (acct_…).")],
    control_url: ControlUrl = None,
) -> None:
    """The account's charges as the processor holds them."""
    found = _call(control_url, lambda c: c.charges(account_id))
    table = Table("id", "reference", "status", "amount", "captured", "refunded", "version")
    for c in found:
        table.add_row(
            c["id"],
            c["reference"] or "",
            c["status"],
            f"{c['amount']} {c['currency']}",
            str(c["amount_captured"]),
            str(c["amount_refunded"]),
            str(c["version"]),
        )
    out.print(table)
