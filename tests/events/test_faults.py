"""Fault injection: each case checks 0 lost, 0 duplicate effects, never in flight twice, and
per-aggregate order, against a real sink on 127.0.0.1 that deduplicates on `webhook-id`."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from events.faults import await_settled, kill, spawn_worker, verdict, worker_log
from events.sink import Sink
from events.support import FAST, eventually, make_tenant, running_worker, scalar
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import service
from tradeflow.kit.keyring import Keyring
from webhooks.support import make_endpoint, publish_widgets

pytestmark = pytest.mark.slow

FAULT = {
    **FAST,
    "webhooks_timeout_seconds": 1.0,
    "delivery_lease_seconds": 6.0,
    "webhooks_retry_schedule": [0.2] * 12,
    "breaker_failure_threshold": 1000,
}


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAULT)


async def _setup(
    db: Database, settings: Settings, keyring: Keyring, sink: Sink
) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = await make_tenant(db)
    endpoint, secret = await make_endpoint(
        db, tenant, settings, keyring, sink.url, event_types=["widget.*"]
    )
    sink.secrets = [secret]
    return tenant, endpoint


async def test_worker_sigkilled_mid_batch_three_times(
    committed: Database,
    database_url: str,
    settings: Settings,
    keyring: Keyring,
    sink: Sink,
    tmp_path: Path,
) -> None:
    tenant, endpoint = await _setup(committed, settings, keyring, sink)
    sink.mode, sink.delay = "slow", 0.05  # keep requests in flight when the kill lands
    ids = await publish_widgets(committed, tenant, aggregates=12, per_aggregate=10)
    takeovers_before = len(sink.requests)
    leased = 0  # the most leases a kill left behind
    for round_ in range(3):
        proc = spawn_worker(settings, database_url, tmp_path)
        try:
            target = takeovers_before + 15 * (round_ + 1)
            try:
                await eventually(lambda t=target: len(sink.requests) >= t, timeout=30)
            except AssertionError as exc:
                raise AssertionError(f"round {round_ + 1}: {exc}\n{worker_log(proc)}") from None
        finally:
            kill(proc, signal.SIGKILL)
        leased = max(
            leased,
            await scalar(
                committed,
                "SELECT count(*) FROM deliveries WHERE subscriber_id = :e AND leased_until > now()",
                e=endpoint,
            ),
        )
    proc = spawn_worker(settings, database_url, tmp_path)
    try:
        await await_settled(committed, endpoint, len(ids), procs=[proc])
    finally:
        kill(proc, signal.SIGTERM)
    result = await verdict(committed, endpoint, ids, sink)
    result.assert_clean()
    # The kills really happened mid-flight: leases were left behind (and taken over).
    assert leased > 0
    assert proc.returncode == 0, worker_log(proc)


async def test_sink_500s_for_a_while_then_recovers(
    committed: Database, fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    tenant, endpoint = await _setup(committed, fault_settings, keyring, sink)
    sink.mode = "fail"
    async with running_worker(fault_settings, committed, keyring):
        ids = await publish_widgets(committed, tenant, aggregates=10, per_aggregate=5)
        await eventually(lambda: len(sink.requests) >= 30)
        sink.mode = "ok"
        await await_settled(committed, endpoint, len(ids))
    (await verdict(committed, endpoint, ids, sink)).assert_clean()
    assert any(r.status == 500 for r in sink.requests)


async def test_sink_times_out_then_refuses_connections(
    committed: Database, fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    tenant, endpoint = await _setup(committed, fault_settings, keyring, sink)
    sink.mode, sink.delay = "slow", 3.0  # the attempt times out after 1 s
    async with running_worker(fault_settings, committed, keyring):
        ids = await publish_widgets(committed, tenant, aggregates=5, per_aggregate=4)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) >= 5 FROM delivery_attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.subscriber_id = :e AND a.outcome = 'timeout'",
                e=endpoint,
            ),
            timeout=30,
        )
        await sink.refuse()
        sink.mode = "ok"
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) >= 5 FROM delivery_attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.subscriber_id = :e "
                "AND a.outcome = 'connect_error'",
                e=endpoint,
            ),
            timeout=30,
        )
        await sink.listen()
        await await_settled(committed, endpoint, len(ids))
    (await verdict(committed, endpoint, ids, sink)).assert_clean()


async def test_sink_slower_than_the_lease(
    committed: Database, fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    # Lease 6 s, timeout 1 s, sink 7 s: the attempt is abandoned at 1 s, long before the
    # lease could expire, so no other worker can start it while it is still open.
    tenant, endpoint = await _setup(committed, fault_settings, keyring, sink)
    sink.mode, sink.delay = "slow", 7.0
    async with (
        running_worker(fault_settings, committed, keyring),
        running_worker(fault_settings, committed, keyring),
    ):
        ids = await publish_widgets(committed, tenant, aggregates=4, per_aggregate=3)
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) >= 8 FROM delivery_attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.subscriber_id = :e",
                e=endpoint,
            ),
            timeout=30,
        )
        sink.mode = "ok"
        await await_settled(committed, endpoint, len(ids))
    (await verdict(committed, endpoint, ids, sink)).assert_clean()


async def test_manual_redelivery_while_a_retry_is_due(
    committed: Database, fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    settings = fault_settings.model_copy(update={"webhooks_retry_schedule": [3600, 3600]})
    tenant, endpoint = await _setup(committed, settings, keyring, sink)
    sink.mode = "fail"
    async with running_worker(settings, committed, keyring):
        ids = await publish_widgets(committed, tenant, aggregates=3, per_aggregate=2)
        # Each aggregate's first event failed once and waits an hour; its second waits behind it.
        await eventually(
            lambda: scalar(
                committed,
                "SELECT count(*) = 3 FROM deliveries WHERE subscriber_id = :e AND attempts = 1",
                e=endpoint,
            )
        )
        sink.mode = "ok"
        async with committed.system_session() as s:
            heads = (
                (
                    await s.execute(
                        text("SELECT id FROM deliveries WHERE subscriber_id = :e AND attempts = 1"),
                        {"e": endpoint},
                    )
                )
                .scalars()
                .all()
            )
            assert len(heads) == 3
            for did in heads:
                await service.redeliver(s, tenant, did)
                await service.redeliver(s, tenant, did)  # twice: still one message in flight
            await s.commit()
        await await_settled(committed, endpoint, len(ids))
    result = await verdict(committed, endpoint, ids, sink)
    result.assert_clean()
    assert result.resent == 0


async def test_backend_killed_mid_transaction(
    committed: Database, fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    tenant, endpoint = await _setup(committed, fault_settings, keyring, sink)
    sink.mode, sink.delay = "slow", 0.02
    async with running_worker(fault_settings, committed, keyring):
        ids = await publish_widgets(committed, tenant, aggregates=10, per_aggregate=6)
        kills = 0
        for round_ in range(6):
            await eventually(lambda r=round_: len(sink.requests) >= 8 * (r + 1), timeout=30)
            # Terminate every other session on this database: the worker's claim, completion
            # and LISTEN connections die wherever they are. This test's own idle pooled
            # connections die too: drop them first, so its queries run on live ones (the pool
            # pings only connections idle for a while).
            await committed.engine.dispose()
            kills += int(
                await scalar(
                    committed,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'",
                )
                or 0
            )
        await committed.engine.dispose()
        await await_settled(committed, endpoint, len(ids))
    (await verdict(committed, endpoint, ids, sink)).assert_clean()
    assert kills > 0


@pytest.fixture
async def private_postgres(
    settings: Settings,
) -> AsyncIterator[tuple[Database, Any]]:
    """A PostgreSQL of this test's own (the shared test server is never restarted)."""
    import pgserver

    from tradeflow.migrations import upgrade

    # A short path of its own: the socket lives in it (Unix socket paths are short).
    base = Path(tempfile.mkdtemp(prefix="tfpg-"))
    server = pgserver.get_server(base / "pgdata", cleanup_mode="delete")
    try:
        url = server.get_uri()
        await asyncio.to_thread(upgrade, url)
        db = Database.from_settings(settings, url)
        try:
            yield db, server
        finally:
            await db.dispose()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


async def test_postgres_restarted_mid_run(
    private_postgres: tuple[Database, Path], fault_settings: Settings, keyring: Keyring, sink: Sink
) -> None:
    from pgserver._commands import pg_ctl

    db, server = private_postgres
    tenant, endpoint = await _setup(db, fault_settings, keyring, sink)
    sink.mode, sink.delay = "slow", 0.02
    async with running_worker(fault_settings, db, keyring):
        ids = await publish_widgets(db, tenant, aggregates=10, per_aggregate=6)
        await eventually(lambda: len(sink.requests) >= 10, timeout=30)
        # pg_ctl from pgserver's bundled binaries, as the server's own system user.
        await asyncio.to_thread(
            pg_ctl,
            ["-m", "immediate", "-w", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=60,
        )
        # Events committed after the restart are delivered too.
        ids += await publish_widgets(db, tenant, aggregates=2, per_aggregate=3)
        await await_settled(db, endpoint, len(ids))
    (await verdict(db, endpoint, ids, sink)).assert_clean()
