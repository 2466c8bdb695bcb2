"""Process lifecycles: the embedded database, `up` (everything in one process), `api`, `worker`.

Every process is stateless; the database is the source of truth. `up` runs
the API server, the worker and the scheduler as tasks on one event loop and
shuts them down in order on Ctrl-C or SIGTERM — HTTP first, then the worker
(which releases its claims), then the embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import structlog
import uvicorn

from tradeflow.config import Settings, get_settings
from tradeflow.db import Database, EmbeddedPostgres
from tradeflow.observability.logging import configure_logging
from tradeflow.observability.tracing import Tracing, configure_tracing

log = structlog.get_logger(__name__)

# pgserver's record of the processes holding the embedded server (pgserver 0.1.x).
HANDLE_LIST = ".handle_pids.json"


@dataclass
class DatabaseHandle:
    url: str
    embedded: EmbeddedPostgres | None

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


@contextlib.contextmanager
def open_database(settings: Settings) -> Iterator[DatabaseHandle]:
    """The configured PostgreSQL: external if `DATABASE_URL` is set, else the embedded one."""
    if settings.database_url:
        handle = DatabaseHandle(settings.database_url, None)
    else:
        embedded = EmbeddedPostgres(settings.home)
        forget_dead_handles(embedded.pgdata)
        handle = DatabaseHandle(embedded.start(), embedded)
    try:
        yield handle
    finally:
        handle.close()


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that died without letting go (kill -9) from pgserver's handle list.

    pgserver stops the server when the last process holding it exits, judging by
    a list of pids in the data folder; a pid left there by a killed process
    would keep the server running forever after. Returns the pids dropped.
    """
    path = pgdata / HANDLE_LIST
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return [pid for pid in pids if pid not in alive]


def prepare_home(settings: Settings) -> Path:
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def migrate(settings: Settings, url: str) -> None:
    from tradeflow.migrations import upgrade

    upgrade(url, app_role=settings.db_app_role)
    log.info("migrations_applied")


def setup_multiprocess_metrics(home: Path) -> None:
    """Point prometheus_client at a fresh per-home folder before any worker process starts."""
    folder = home / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def app_factory() -> object:
    """Entry for `uvicorn --factory` (`tradeflow api --workers N`): each worker builds its app."""
    from tradeflow.app import create_app
    from tradeflow.kit.keyring import load_keyring

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = os.environ["TRADEFLOW_RESOLVED_DATABASE_URL"]
    db = Database.from_settings(settings, url)
    app = create_app(settings, db, keyring=load_keyring(settings), owns_db=True)
    tracing = configure_tracing(settings, app=app, engine=db.engine)
    _on_worker_exit(app, tracing)
    return app


def _on_worker_exit(app: Any, tracing: Tracing | None) -> None:
    """When a worker stops: send its last spans, and drop its live gauges so `livesum`
    counts only running workers."""
    from tradeflow.observability.metrics import mark_process_dead

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            yield state
        if tracing is not None:
            tracing.shutdown()
        mark_process_dead(os.getpid())

    app.router.lifespan_context = lifespan


async def _serve_until_signal(
    tasks: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]],
) -> None:
    """Run each task with a shared stop event; stop them all on SIGINT/SIGTERM or when one ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running: list[asyncio.Task[None]] = [asyncio.create_task(t(stop)) for t in tasks]
    try:
        done, _ = await asyncio.wait(
            [*running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        for task in running:
            if task in done and (error := task.exception()) is not None:
                raise error
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to us: the shared stop event drives every task.

    uvicorn's own handler would swallow SIGTERM and re-raise it once it has
    stopped, racing the worker's shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_task(
    app: object, settings: Settings, host: str, port: int
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)

    async def run(stop: asyncio.Event) -> None:
        serve = asyncio.create_task(server.serve())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([serve, stopper], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serve
        stopper.cancel()
        if not server.started:
            raise RuntimeError(f"the API server could not start on {host}:{port}")

    return run


def run_async(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a long-lived process's main coroutine on uvloop when it is installed.

    `tradeflow api` gets uvloop from uvicorn; `up` and `worker` run their own loop, and
    bench/driver.py measured uvloop worth up to half again the throughput on the hot path.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover — uvicorn[standard] installs it where it builds
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def local_api_url(settings: Settings) -> str:
    """This process's API as seen from inside it (a wildcard bind answers on loopback)."""
    host = settings.host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 — reading a bind address, not binding
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def after_ready(
    settings: Settings,
    name: str,
    step: Callable[[], Coroutine[Any, Any, None]],
    *,
    ready_timeout: float = 120.0,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A post-start hook for `_serve_until_signal`: `step` runs once this process's API answers
    `/readyz` (the worker and any demo task run beside it by then).

    The step runs once and is not critical: a failure is logged as `<name>_failed` and the
    platform keeps serving; a stop signal cancels a step still running. The task then idles
    until the stop, as one that ended would take every other task down with it.
    """
    import httpx

    async def ready(stop: asyncio.Event) -> bool:
        url = local_api_url(settings) + "/readyz"
        deadline = asyncio.get_running_loop().time() + ready_timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
        return False

    async def attempt(stop: asyncio.Event) -> None:
        if not await ready(stop):
            if not stop.is_set():
                log.error(f"{name}_failed", error=f"the API was not ready within {ready_timeout}s")
            return
        work = asyncio.create_task(step())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([work, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return
        work.result()

    async def run(stop: asyncio.Event) -> None:
        try:
            await attempt(stop)
        except Exception as exc:
            log.exception(f"{name}_failed", error=str(exc))
        await stop.wait()

    return run
