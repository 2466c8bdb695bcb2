"""The background worker: dispatcher, delivery loop, completion writer and scheduler.

Any number of workers run against one database with no leader. Each pass:
dispatch as many committed events as this process has free slots (if no other
worker is dispatching) and lease what that creates, claim due deliveries when
some may be claimable, start one task per delivery (or per aggregate's chain),
and sleep until woken by LISTEN/NOTIFY, a freed slot, a completion that may have
unblocked an aggregate's next event, a retry coming due, or the polling backstop.

Attempt results are gathered for `delivery_flush_seconds` and written in
batches by a single writer task.
On SIGTERM (the stop event) the worker stops claiming, gives in-flight
attempts `delivery_shutdown_seconds` to finish, releases the leases of those
that did not, writes every result it holds, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import completion, engine, metrics
from tradeflow.events.pinned import PinnedSession
from tradeflow.events.registry import (
    HANDLERS,
    TRANSPORTS,
    AttemptResult,
    Claimed,
    Transport,
    TransportDeps,
    load_plugins,
)
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

CHANNEL = "tradeflow_work"
_BACKOFF_MAX = 5.0
_GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (default 700)


def plain_dsn(url: str) -> str:
    """A libpq-style DSN for asyncpg from any of our SQLAlchemy URLs."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def sync_handler_subscribers(db: Database) -> None:
    """Mirror the code's `@subscriber` handlers into `subscribers` so dispatch can match them."""
    if not HANDLERS:
        return
    async with db.system_session() as session:
        for handler in HANDLERS.values():
            await session.execute(
                text(
                    "INSERT INTO subscribers (id, tenant_id, kind, name, event_types) "
                    "VALUES (:id, NULL, 'handler', :name, :types) "
                    "ON CONFLICT (kind, name) WHERE tenant_id IS NULL "
                    "DO UPDATE SET event_types = EXCLUDED.event_types, updated_at = now() "
                    "WHERE subscribers.event_types IS DISTINCT FROM EXCLUDED.event_types"
                ),
                {"id": uuid.uuid4(), "name": handler.name, "types": list(handler.event_types)},
            )
        await session.commit()


class DeliveryWorker:
    def __init__(
        self, settings: Settings, db: Database, keyring: Keyring, *, name: str | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.keyring = keyring
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.transports: dict[str, Transport] = {}
        self._wake = asyncio.Event()
        self._results: list[completion.Completion] = []
        self._results_ready = asyncio.Event()
        self._in_flight: dict[uuid.UUID, tuple[asyncio.Task[Any], Claimed]] = {}
        self._draining = False
        self._failures = 0
        self._start_failures: dict[str, int] = {}  # consecutive failed batch starts, by kind
        # Whether the next pass should run a claim of its own (beyond leasing what its
        # dispatch creates): set by what can make deliveries claimable without this
        # worker's dispatch — written completions (they free endpoints' in-flight room),
        # a freed slot, another worker's dispatch, the polling backstop (retries coming
        # due, expired leases), a failed pass. A new event alone does not: whichever
        # worker dispatches it leases it, and announces what it left.
        self._claim_due = True
        # Whether claimable work was seen lately: another worker's dispatch left some, our
        # own dispatch could not lease all it created, or the last claim found some. Only
        # then do a freed slot or written completions call for a claim; in the steady
        # state every delivery is leased by the dispatch that creates it, and a claim
        # after each completion would find nothing.
        self._backlog = True
        # Whether the last pass filled every slot it had (or had none): more events may
        # wait undispatched for the next slot to free up.
        self._starved = False
        # The loop and the completion writer each keep a connection (see `pinned`).
        self._cycle_db = PinnedSession(db)
        self._flush_db = PinnedSession(db)

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from tradeflow.events import handlers_transport  # noqa: F401  (registers "handler")
        from tradeflow.events.scheduler import Scheduler

        load_plugins()
        deps = TransportDeps(self.settings, self.db, self.keyring)
        self.transports = {kind: factory(deps) for kind, factory in TRANSPORTS.items()}
        await self._retrying(lambda: sync_handler_subscribers(self.db), stop)
        helpers = [
            asyncio.create_task(self._listen(stop), name="listen"),
            asyncio.create_task(self._write_results(stop), name="results"),
            asyncio.create_task(self._refresh_gauges(stop), name="gauges"),
        ]
        if self.settings.scheduler_enabled:
            helpers.append(
                asyncio.create_task(Scheduler(self.settings, self.db, self.name).run(stop))
            )
        log.info("worker_started", worker=self.name, transports=sorted(self.transports))
        try:
            await self._loop(stop)
        finally:
            await self._shutdown(helpers)
            log.info("worker_stopped", worker=self.name)

    async def _retrying(self, fn: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await fn()
                return
            except Exception as exc:
                log.warning("worker_db_retry", error=repr(exc))
                await self._sleep(stop, delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    async def _shutdown(self, helpers: list[asyncio.Task[Any]]) -> None:
        self._draining = True
        tasks = [t for t, _ in self._in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.delivery_shutdown_seconds)
        leftovers = [item for task, item in self._in_flight.values() if not task.done()]
        for task, _ in self._in_flight.values():
            task.cancel()
        await asyncio.gather(*(t for t, _ in self._in_flight.values()), return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.db.system_session() as session:
                await engine.release(session, leftovers)
                await session.commit()
        with contextlib.suppress(Exception):
            await self._flush()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for transport in self.transports.values():
            with contextlib.suppress(Exception):
                await transport.close()
        await self._cycle_db.close()
        await self._flush_db.close()

    # -- the loop -------------------------------------------------------------------------------
    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the pass, not after: a wake-up that arrives while the pass
            # runs (a slot freed, a completion written) must not be lost.
            self._wake.clear()
            try:
                progressed = await self.cycle()
                self._failures = 0
            except Exception as exc:
                self._claim_due = True
                self._failures += 1
                delay = min(0.2 * 2 ** (self._failures - 1), _BACKOFF_MAX)
                log.warning("worker_cycle_failed", error=repr(exc), retry_in=delay)
                await self._sleep(stop, delay)
                continue
            if progressed:
                self._claim_due = True
            else:
                await self._wait(stop, self.settings.delivery_poll_seconds)
                if not self._wake.is_set():
                    self._claim_due = True  # the polling backstop

    async def cycle(self) -> bool:
        """One pass: dispatch, then claim and start work. True if more may be waiting.

        Dispatch and claim share one transaction (one commit, one pool checkout): the
        claim sees the deliveries the dispatch just created or promoted, so a new event
        reaches its attempt without a second round of wake-up, claim and commit.
        """
        free = self.settings.delivery_concurrency - len(self._in_flight)
        want = min(free, self.settings.delivery_batch_size)
        claimed: list[Claimed] = []
        abandoned: list[completion.Completion] = []
        leased_at = time.monotonic()
        claiming = want > 0 and not self._draining
        if not claiming:
            # No free slot (the next attempt to finish wakes the loop) or stopping.
            self._starved = True
            return False
        claim_due, self._claim_due = self._claim_due, False
        kinds, handlers = list(self.transports), list(HANDLERS)
        # A pass dispatches no more events than it can lease: a delivery created and left
        # unleased costs a claim later, and an aggregate's run is leased (and sent as a
        # chain) only when its events are dispatched together with a free slot for each.
        # Workers with no free slot leave dispatching to those that have one.
        async with self._cycle_db.session() as session:
            dispatched = await engine.dispatch_batch(
                session,
                limit=want,
                origin=self.name,
                claim=engine.ClaimRequest(self.name, want, kinds, handlers, self.settings),
            )
            if dispatched is not None:
                claimed = dispatched.claimed
                if dispatched.claimable:
                    self._backlog = True
            promoted = dispatched is not None and dispatched.promoted > 0
            if len(claimed) < want and (claim_due or promoted):
                # Retries, promoted successors and other workers' leftovers.
                asked = want - len(claimed)
                found = await engine.claim_batch(
                    session,
                    owner=self.name,
                    limit=asked,
                    kinds=kinds,
                    handlers=handlers,
                    settings=self.settings,
                )
                claimed += found
                # Nothing claimable left (as far as this claim could see) once it came
                # back empty; a full claim means more may wait.
                self._backlog = bool(found) or (dispatched is not None and dispatched.unleased > 0)
                abandoned = await completion.abandoned_beyond_budget(
                    session, claimed, settings=self.settings, worker=self.name
                )
            await session.commit()
        progressed = dispatched is not None and dispatched.events >= want
        got = len(claimed) + len(abandoned)
        # Every slot asked for was filled: more may be waiting for the next free one.
        self._starved = progressed or got >= want
        if abandoned:
            dead = {c.item.delivery_id for c in abandoned}
            claimed = [c for c in claimed if c.delivery_id not in dead]
            self._results.extend(abandoned)
            self._results_ready.set()
        if claimed:
            await self._start(claimed, leased_at)
        # The claim saw whatever this dispatch created or promoted: only a full claim
        # (or a full dispatch) means more may be waiting right now.
        return progressed or got >= want

    async def _start(self, claimed: list[Claimed], leased_at: float) -> None:
        by_kind: dict[str, list[Claimed]] = {}
        for item in claimed:
            by_kind.setdefault(item.subscriber_kind, []).append(item)
        # Leases already committed: whatever cannot start must not be left to expire,
        # since a takeover counts as a used attempt although nothing was sent.
        skipped: set[uuid.UUID] = set()
        for kind, items in by_kind.items():
            try:
                refused = await self.transports[kind].prepare(items)
            except Exception as exc:
                skipped.update(i.delivery_id for i in items)
                await self._start_failed(kind, items, exc)
                continue
            self._start_failures.pop(kind, None)
            if refused:
                unserved = [i for i in items if i.subscriber_id in refused]
                skipped.update(i.delivery_id for i in unserved)
                self._setup_failed(unserved, refused)
        # The lease is counted from before the claim statement was sent, so this
        # deadline is never later than the one other workers see in the database.
        deadline = leased_at + self.settings.delivery_lease_seconds
        # One task per (subscriber, aggregate): a dispatch leases an aggregate's run of
        # new events together, and they go out one after the other, in sequence.
        runs: dict[tuple[uuid.UUID, str, str], list[Claimed]] = {}
        for item in claimed:
            if item.delivery_id not in skipped:
                key = (item.subscriber_id, item.event.aggregate_type, item.event.aggregate_id)
                runs.setdefault(key, []).append(item)
        for run in runs.values():
            task: asyncio.Task[Any]
            if len(run) == 1:
                task = asyncio.create_task(self._attempt(run[0], deadline))
            else:
                run.sort(key=lambda i: i.event.sequence)
                task = asyncio.create_task(self._attempt_run(run, deadline))
            for item in run:
                self._in_flight[item.delivery_id] = (task, item)

    async def _start_failed(self, kind: str, items: list[Claimed], exc: Exception) -> None:
        """A transport could not start a batch (e.g. a database error loading endpoints):
        hand the leases back now, uncounted, due again after a backoff that grows while
        the failure persists (so it does not spin)."""
        n = self._start_failures[kind] = self._start_failures.get(kind, 0) + 1
        delay = min(0.2 * 2 ** (n - 1), _BACKOFF_MAX)
        subscribers = sorted({str(i.subscriber_id) for i in items})
        log.error(
            "delivery_start_failed",
            kind=kind,
            subscribers=subscribers,
            deliveries=len(items),
            error=repr(exc),
            retry_in=delay,
        )
        try:
            async with self.db.system_session() as session:
                await engine.release(session, items, delay=delay)
                await session.commit()
        except Exception as release_exc:
            # Nothing more to do here: the leases expire and are taken over.
            log.error(
                "delivery_release_failed",
                kind=kind,
                subscribers=subscribers,
                error=repr(release_exc),
            )
        self._claim_due = True

    def _setup_failed(self, items: list[Claimed], reasons: Mapping[uuid.UUID, str]) -> None:
        """Subscribers the transport cannot serve (e.g. a secret that does not decrypt):
        a failed attempt for each delivery, so they follow the retry schedule and show in
        the delivery log."""
        now = utcnow()
        for subscriber_id in sorted({i.subscriber_id for i in items}):
            log.error(
                "delivery_setup_failed",
                subscriber_id=str(subscriber_id),
                error=reasons[subscriber_id],
                deliveries=sum(1 for i in items if i.subscriber_id == subscriber_id),
            )
        for item in items:
            result = AttemptResult(
                outcome="failure",
                error=f"setup_failed: {reasons[item.subscriber_id]}",
                started_at=now,
            )
            self._results.append(completion.Completion(item, result, self.name))
        self._results_ready.set()

    async def _attempt_run(self, run: list[Claimed], deadline: float) -> None:
        """Deliver an aggregate's leased run in sequence; after the first that does not
        succeed (or runs out of lease), hand the rest back untried: they wait behind it."""
        for n, item in enumerate(run):
            if not await self._attempt(item, deadline):
                rest = run[n + 1 :]
                try:
                    await self._release(rest)
                finally:
                    for later in rest:
                        self._in_flight.pop(later.delivery_id, None)
                return

    async def _release(self, items: list[Claimed]) -> None:
        if items:
            async with self.db.system_session() as session:
                await engine.release(session, items)
                await session.commit()

    async def _attempt(self, item: Claimed, deadline: float) -> bool:
        """One attempt; True if it succeeded."""
        transport = self.transports[item.subscriber_kind]
        try:
            if time.monotonic() + self.settings.webhooks_timeout_seconds + 2 > deadline:
                # Too little lease left to finish inside it: hand it back untried.
                await self._release([item])
                return False
            started_at = utcnow()
            t0 = time.perf_counter()
            try:
                result = await transport.deliver(item)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                result = AttemptResult(outcome="timeout", error="timed out")
            except Exception as exc:
                result = completion.failure_from_exception(exc)
            result.started_at = result.started_at or started_at
            result.duration = time.perf_counter() - t0
            self._results.append(completion.Completion(item, result, self.name))
            self._results_ready.set()
            return result.ok
        finally:
            self._in_flight.pop(item.delivery_id, None)
            # A freed slot matters only while there is work to fill it: claimable
            # deliveries, or events the last passes had no slot to dispatch.
            if self._backlog:
                self._claim_due = True
                self._wake.set()
            elif self._starved:
                self._wake.set()

    # -- results --------------------------------------------------------------------------------
    async def _write_results(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while True:
            await self._results_ready.wait()
            if self.settings.delivery_flush_seconds:
                # Gather first: the answers to a pass's requests arrive within milliseconds
                # of each other and go into one batch (one transaction), rather than the
                # first answer alone and the rest after it.
                await asyncio.sleep(self.settings.delivery_flush_seconds)
            try:
                await self._flush()
                delay = 0.1
            except Exception as exc:
                # Results stay queued; the leases still protect the deliveries meanwhile.
                log.warning("worker_flush_failed", error=repr(exc), pending=len(self._results))
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    async def _flush(self) -> None:
        self._results_ready.clear()
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            async with self._flush_db.session() as session:
                done = await completion.complete_batch(
                    session,
                    batch,
                    settings=self.settings,
                    breaker_kinds=frozenset(
                        k for k, t in self.transports.items() if t.uses_breaker
                    ),
                )
                await session.commit()
        except BaseException:
            self._results = batch + self._results
            self._results_ready.set()
            raise
        # Look again now if the batch may have made work claimable: a finished delivery
        # with a successor (promoted by the next dispatch), an endpoint whose in-flight
        # room it freed while deliveries of its wait, a retry due at once, or claimable
        # work seen elsewhere.
        if done.successors or done.held or self._backlog:
            self._poke()
        if done.retry_at is not None:
            delay = (done.retry_at - utcnow()).total_seconds()
            if delay <= 0:
                self._poke()
            elif delay < self.settings.delivery_poll_seconds:
                # Sooner than the polling backstop would notice it.
                asyncio.get_running_loop().call_later(delay, self._poke)

    def _poke(self) -> None:
        """Run a pass with a claim soon."""
        self._claim_due = True
        self._wake.set()

    # -- wake-ups -------------------------------------------------------------------------------
    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN on a dedicated connection; reconnect after a restart (polling covers the gap)."""
        delay = 0.2
        while not stop.is_set():
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(plain_dsn(self.db.url))
                await conn.add_listener(CHANNEL, self._notified)
                delay = 0.2
                # Anything committed while we were not listening.
                self._claim_due = True
                self._wake.set()
                while not stop.is_set() and not conn.is_closed():
                    await self._sleep(stop, 1.0)
            except Exception as exc:
                log.info("worker_listen_reconnect", error=repr(exc))
                await self._sleep(stop, delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.name:
            return  # our own dispatch's announcement: that pass already claimed what it could
        if payload != "e":
            # Another worker dispatched and left deliveries for a claim.
            self._claim_due = True
            self._backlog = True
        self._wake.set()

    async def _refresh_gauges(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await refresh_gauges(self.db)
            await self._sleep(stop, 5.0)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def refresh_gauges(db: Database) -> None:
    async with db.system_session() as session:
        row = (
            await session.execute(
                text(
                    """
                    SELECT
                      (SELECT count(*) FROM deliveries
                        WHERE status = 'pending' AND next_attempt_at <= now()) AS backlog,
                      (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM deliveries
                        WHERE status = 'pending' AND next_attempt_at <= now()) AS oldest,
                      (SELECT count(*) FROM deliveries WHERE status = 'dead') AS dead,
                      (SELECT count(*) FROM events WHERE dispatched_at IS NULL) AS undispatched
                    """
                )
            )
        ).one()
        states = (
            await session.execute(
                text(
                    """
                    SELECT CASE WHEN NOT enabled THEN 'disabled'
                                WHEN paused THEN 'paused'
                                WHEN breaker_state = 'open' AND breaker_open_until <= now()
                                  THEN 'half_open'
                                ELSE breaker_state END AS state, count(*) AS n
                    FROM subscribers WHERE kind <> 'handler' GROUP BY 1
                    """
                )
            )
        ).all()
    metrics.BACKLOG.set(row.backlog)
    metrics.OLDEST_DUE_AGE.set(float(row.oldest or 0))
    metrics.DEAD_LETTER_COUNT.set(row.dead)
    metrics.UNDISPATCHED.set(row.undispatched)
    seen = {s.state: s.n for s in states}
    for state in ("closed", "open", "half_open", "paused", "disabled"):
        metrics.BREAKERS.labels(state).set(seen.get(state, 0))


async def run_worker(
    settings: Settings, db: Database, keyring: Keyring, stop: asyncio.Event
) -> None:
    await DeliveryWorker(settings, db, keyring).run(stop)


def run_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run a worker process's event loop on uvloop when it is installed (it comes with
    uvicorn[standard] on Linux): the delivery loop is CPU-bound in the event loop, and
    uvloop drained about 1.5x as many deliveries per second in bench/delivery.py.

    The cyclic garbage collector is tuned for that loop too: each delivery allocates
    dozens of short-lived containers (tasks, futures, requests), which with the default
    thresholds start a collection every few deliveries, each walking the young objects.
    What is loaded at start-up (modules, settings) is frozen out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        import uvloop
    except ImportError:  # pragma: no cover — e.g. Windows
        asyncio.run(main())  # type: ignore[arg-type]
        return
    uvloop.run(main())  # type: ignore[arg-type]
