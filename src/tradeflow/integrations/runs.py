"""Reconciliation runs requested through the API (queued, performed by the worker) and the
nightly schedule. The check itself is `integrations.reconciliation`."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.integrations.models import ReconciliationRun
from tradeflow.integrations.reconciliation import Reconciler
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

ABANDONED_AFTER = timedelta(hours=1)


async def queue_run(
    session: AsyncSession, tenant_id: uuid.UUID, *, trigger: str, grace_seconds: float
) -> ReconciliationRun:
    """Record a run for the worker to perform (in the caller's transaction)."""
    run = ReconciliationRun(
        id=uuid7(),
        tenant_id=tenant_id,
        trigger=trigger,
        status="queued",
        started_at=utcnow(),
        mismatch_count=0,
        counts={},
        checked={},
        grace_seconds=grace_seconds,
    )
    session.add(run)
    await session.flush()
    return run


_CLAIM_RUN = text(
    """
    UPDATE reconciliation_runs r SET status = 'running', started_at = now()
    FROM (SELECT id FROM reconciliation_runs WHERE status = 'queued'
          ORDER BY started_at LIMIT 1 FOR UPDATE SKIP LOCKED) q
    WHERE r.id = q.id
    RETURNING r.id, r.tenant_id, r.grace_seconds
    """
)
_ABANDON = text(
    "UPDATE reconciliation_runs SET status = 'failed', finished_at = now(), "
    "error = 'abandoned: the worker running it stopped' "
    "WHERE status = 'running' AND started_at < now() - make_interval(secs => :secs)"
)


async def run_queued(db: Database, keyring: Keyring, *, limit: int = 20) -> int:
    """Perform queued runs one by one (any number of workers; each run is claimed once)."""
    done = 0
    async with db.system_session() as session:
        await session.execute(_ABANDON, {"secs": ABANDONED_AFTER.total_seconds()})
        await session.commit()
    while done < limit:
        async with db.system_session() as session:
            row = (await session.execute(_CLAIM_RUN)).first()
            await session.commit()
        if row is None:
            return done
        reconciler = Reconciler(
            db=db, keyring=keyring, tenant_id=row.tenant_id, grace_seconds=row.grace_seconds
        )
        await reconciler.run("queued", run_id=row.id)
        done += 1
    return done


async def tenants_to_reconcile(db: Database) -> list[uuid.UUID]:
    async with db.system_session() as session:
        rows = await session.execute(
            text(
                "SELECT DISTINCT tenant_id FROM connector_instances WHERE enabled "
                "UNION SELECT DISTINCT tenant_id FROM processor_settlements"
            )
        )
        await session.commit()
        return [r[0] for r in rows]
