"""The `tradeflow` command line (Typer + Rich)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tradeflow.config import ConfigError, Settings, load_settings
from tradeflow.observability.logging import configure_logging

app = typer.Typer(
    name="tradeflow",
    help="Tradeflow — B2B order-to-cash platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

HostOpt = Annotated[
    str | None, typer.Option("--host", help="Interface to bind (default from settings).")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="Port to bind (default from settings).")
]


def settings_or_exit(**overrides: object) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        # Escaped and unwrapped: the message quotes raw values and must stay greppable.
        console.print(f"[bold red]configuration error[/]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed a demo seller and write its credentials.")
    ] = False,
    host: HostOpt = None,
    port: PortOpt = None,
) -> None:
    """Run everything in one process: embedded PostgreSQL, migrations, API, worker and scheduler."""
    from tradeflow.app import create_app
    from tradeflow.db import Database
    from tradeflow.events.worker import run_worker
    from tradeflow.kit.keyring import load_keyring
    from tradeflow.observability.tracing import configure_tracing
    from tradeflow.runtime import migrate, open_database, prepare_home, run_async, uvicorn_task

    settings = settings_or_exit(host=host, port=port)
    home = prepare_home(settings)
    keyring = load_keyring(settings)
    with open_database(settings) as handle:
        migrate(settings, handle.url)
        if demo:
            from tradeflow.demo import seed_demo

            creds = seed_demo(settings, handle.url, keyring)
            path = home / "demo-credentials.json"
            console.print(f"[green]demo credentials[/] written to [bold]{path}[/]")
            console.print(f"  log in as {creds['email']} at {creds['base_url']}")

        async def main() -> None:
            db = Database.from_settings(settings, handle.url)
            api = create_app(settings, db, keyring=keyring)
            configure_tracing(settings, app=api, engine=db.engine)
            serve = uvicorn_task(api, settings, settings.host, settings.port)

            async def worker(stop: asyncio.Event) -> None:
                await run_worker(settings, db, keyring, stop)

            from tradeflow.cli_payments import demo_tasks
            from tradeflow.demo import post_start_tasks
            from tradeflow.runtime import _serve_until_signal

            console.print(
                f"[bold green]Tradeflow[/] listening on {settings.base_url}  (Ctrl-C stops)"
            )
            try:
                await _serve_until_signal(
                    [
                        serve,
                        worker,
                        *demo_tasks(settings, handle.url, demo),
                        *post_start_tasks(settings, demo),
                    ]
                )
            finally:
                await db.dispose()

        run_async(main)
    console.print("[bold]Tradeflow stopped.[/]")


@app.command()
def api(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Uvicorn worker processes.")] = 1,
) -> None:
    """Run only the HTTP API (scale out with several of these). Run `tradeflow migrate` first."""
    import uvicorn

    from tradeflow.runtime import open_database, prepare_home, setup_multiprocess_metrics

    settings = settings_or_exit(host=host, port=port)
    home = prepare_home(settings)
    from tradeflow.kit.keyring import load_keyring

    load_keyring(settings)  # create a generated key once, before the workers race to
    if workers > 1:
        setup_multiprocess_metrics(home)
    with open_database(settings) as handle:
        os.environ["TRADEFLOW_RESOLVED_DATABASE_URL"] = handle.url
        if host:
            os.environ["TRADEFLOW_HOST"] = host
        if port:
            os.environ["TRADEFLOW_PORT"] = str(port)
        uvicorn.run(
            "tradeflow.runtime:app_factory",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
        )


@app.command()
def worker() -> None:
    """Run only the background worker and scheduler (any number of these, no leader)."""
    from tradeflow.db import Database
    from tradeflow.events.worker import run_worker
    from tradeflow.kit.keyring import load_keyring
    from tradeflow.runtime import _serve_until_signal, open_database, prepare_home

    settings = settings_or_exit()
    prepare_home(settings)
    keyring = load_keyring(settings)
    if settings.worker_metrics_port:
        from tradeflow.observability.metrics import serve_metrics

        serve_metrics(settings.host, settings.worker_metrics_port)  # a daemon thread
    with open_database(settings) as handle:

        async def main() -> None:
            db = Database.from_settings(settings, handle.url)

            async def work(stop: asyncio.Event) -> None:
                await run_worker(settings, db, keyring, stop)

            try:
                await _serve_until_signal([work])
            finally:
                await db.dispose()

        from tradeflow.events.worker import run_loop

        run_loop(main)


@app.command(name="migrate")
def migrate_cmd() -> None:
    """Apply database migrations up to the latest revision of every context."""
    from tradeflow.runtime import migrate, open_database, prepare_home

    settings = settings_or_exit()
    prepare_home(settings)
    with open_database(settings) as handle, console.status("applying migrations…"):
        migrate(settings, handle.url)
    console.print("[green]database is at the latest revision[/]")


def _register_subcommands() -> None:
    from tradeflow import cli_admin, cli_events

    cli_admin.register(app)
    cli_events.register(app)
    from tradeflow import cli_integrations

    cli_integrations.register(app)
    from tradeflow.connectors.commerceml import cli as cli_commerceml

    cli_commerceml.register(app)
    from tradeflow.ledger import cli as cli_ledger

    cli_ledger.register(app)
    from tradeflow import cli_payments

    cli_payments.register(app)


def main() -> None:
    _register_subcommands()
    app()


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def default_home() -> Path:
    return Path(os.environ.get("TRADEFLOW_HOME", "var"))
