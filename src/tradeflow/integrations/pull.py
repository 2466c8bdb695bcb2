"""Pulling changes from a document connector: remote edits taken over, per field ownership.

A run of one connector instance (scheduled, on demand through the API, or
`tradeflow connectors pull`) is:

1. **claim** (short transaction): take the instance's pull lease
   (`connector_pulls.running_*`), so one pull of an instance runs at a time
   across workers and the CLI, and read the stored cursor;
2. **fetch** a page with `pull_changes(cursor)` — outside any transaction;
3. **apply** the page and store the next cursor in *one* transaction: each
   change finds our document through the external-id map, the ownership
   policy decides field by field (`merge.plan_pull`), values we take over go
   through the owning context's service (`appliers`), a shared field changed
   on both sides opens a conflict (`sync.conflict`). The cursor moves only
   with the page it covers, so a crash before the commit pulls the page
   again; applying a record a second time finds nothing left to do (both
   sides then hold the values taken over), which makes that repeat harmless;
4. repeat while the connector says more is waiting (bounded per run), then
   record the outcome and the next scheduled time.

A document whose push is in flight (its lease is held) is not touched: the
page is retried a few times and otherwise left to the next pull. A change
older than the version a push already saw is a no-op; when versions cannot
be ordered (ETags) and a push synced the document after the page was read,
the record is read again before it is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.events.scheduler import next_tick
from tradeflow.integrations import service
from tradeflow.integrations.appliers import APPLIERS, InvalidChange
from tradeflow.integrations.merge import plan_pull
from tradeflow.integrations.models import ConnectorInstance, ConnectorPull, ExternalRef
from tradeflow.integrations.plugins import (
    DEFAULT_PULL_CRON,
    Capability,
    ChangeBatch,
    ConnectorError,
    DocumentConnector,
    RemoteChange,
    RemoteRecord,
    available,
)
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.integrations.sync import queue_conflict
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

PAGES_PER_RUN = 50
BUSY_RETRIES = 5
PROBLEMS_KEPT = 20
COUNT_NAMES = (
    "pulled",
    "unchanged",
    "applied",
    "conflicted",
    "ignored",
    "unknown",
    "created",
    "rejected",
)


class PullBusy(ConnectorError):
    """A document of the page is being pushed right now; the page waits for the next pull."""


class PullLeaseLost(ConnectorError):
    """The run outlived its lease and another took over; its work stands."""


class _Busy(Exception):
    """A document's push is in flight: the page is retried, then left to the next pull."""


class _Stale(Exception):
    def __init__(self, change: RemoteChange) -> None:
        super().__init__(change.external_id)
        self.change = change


@dataclass(frozen=True, slots=True)
class PullResult:
    status: str  # ok, failed, running (another run holds the lease), off (not configured)
    counts: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    error: str | None = None


def _order(version: str, known: str | None) -> int | None:
    """-1, 0 or 1 as `version` is older than, the same as or newer than `known`, when the two
    can be ordered (numbers, or ISO times such as an updated-at); None for opaque ETags."""
    if known is None:
        return None
    with contextlib.suppress(ValueError):
        a, b = int(version), int(known)
        return (a > b) - (a < b)
    try:
        t, u = _iso(version), _iso(known)
        return (t > u) - (t < u)
    except ValueError:
        return None


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time without a zone cannot be ordered")
    return parsed


@dataclass
class ChangePuller:
    db: Database
    tenant_id: uuid.UUID
    connector_id: uuid.UUID
    connector: DocumentConnector
    lease_seconds: float = 300.0
    max_pages: int = PAGES_PER_RUN
    busy_wait_seconds: float = 0.2

    async def run(self) -> PullResult:
        claimed = await self._claim()
        if claimed is None:
            return PullResult(status="running")
        token, cursor = claimed
        counts: Counter[str] = Counter()
        pages = 0
        error: str | None = None
        try:
            for _ in range(self.max_pages):
                fetched_at = utcnow()
                batch = await self.connector.pull_changes(cursor)
                await self._apply_page(batch, token, fetched_at, counts)
                pages += 1
                cursor = batch.next_cursor
                if not batch.more:
                    break
        except ConnectorError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # recorded on the instance, not lost in a worker log
            log.exception("connector_pull_failed", connector_id=str(self.connector_id))
            error = f"{type(exc).__name__}: {exc}"
        except BaseException:
            await asyncio.shield(self._finish(token, counts, "interrupted"))
            raise
        await self._finish(token, counts, error)
        return PullResult(
            status="failed" if error else "ok",
            counts={name: counts.get(name, 0) for name in COUNT_NAMES},
            pages=pages,
            error=error,
        )

    # -- the run's lease -------------------------------------------------------------------------
    async def _claim(self) -> tuple[uuid.UUID, str | None] | None:
        async with self.db.tenant_session(self.tenant_id) as session:
            row = await IntegrationsRepository(session, self.tenant_id).pull_state_for_update(
                self.connector_id
            )
            now = utcnow()
            if row.running_until is not None and row.running_until > now:
                await session.commit()
                return None
            token = uuid.uuid4()
            row.running_until = now + timedelta(seconds=self.lease_seconds)
            row.running_token = token
            row.last_started_at = now
            cursor = row.cursor
            await session.commit()
        return token, cursor

    async def _finish(self, token: uuid.UUID, counts: Counter[str], error: str | None) -> None:
        async with self.db.tenant_session(self.tenant_id) as session:
            row = await IntegrationsRepository(session, self.tenant_id).pull_fenced(
                self.connector_id, token
            )
            if row is None:
                await session.commit()
                return
            now = utcnow()
            row.running_until = None
            row.running_token = None
            row.requested_at = None
            row.last_finished_at = now
            row.last_counts = {name: counts.get(name, 0) for name in COUNT_NAMES}
            row.totals = {
                name: int(row.totals.get(name, 0)) + counts.get(name, 0) for name in COUNT_NAMES
            }
            row.next_pull_at = next_tick(self.connector.pull_cron(), now)
            if error is None:
                row.last_success_at = now
                row.consecutive_failures = 0
            else:
                row.last_error = error[:2000]
                row.last_error_at = now
                row.consecutive_failures += 1
            await session.commit()

    # -- one page ---------------------------------------------------------------------------------
    async def _apply_page(
        self, batch: ChangeBatch, token: uuid.UUID, fetched_at: datetime, counts: Counter[str]
    ) -> None:
        changes = list(batch.changes)
        read_at = [fetched_at] * len(changes)  # when each change was read from the remote
        delay = self.busy_wait_seconds
        busy_left = BUSY_RETRIES
        rereads_left = len(changes)  # each change may be read again once
        while busy_left > 0 and rereads_left >= 0:
            page: Counter[str] = Counter()
            problems: list[dict[str, Any]] = []
            stale: int | None = None
            async with self.db.tenant_session(self.tenant_id) as session:
                repo = IntegrationsRepository(session, self.tenant_id)
                row = await repo.pull_fenced(self.connector_id, token)
                if row is None:
                    raise PullLeaseLost("the pull's lease was taken over")
                try:
                    for i, change in enumerate(changes):
                        page[await self._apply(session, repo, change, read_at[i], problems)] += 1
                except _Busy:
                    await session.rollback()
                    busy_left -= 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                except _Stale as exc:
                    await session.rollback()
                    rereads_left -= 1
                    stale = changes.index(exc.change)
                else:
                    page["pulled"] = len(batch.changes)
                    row.cursor = batch.next_cursor
                    row.running_until = utcnow() + timedelta(seconds=self.lease_seconds)
                    if problems:
                        row.problems = (problems[::-1] + list(row.problems))[:PROBLEMS_KEPT]
                    await session.commit()
            if stale is None:
                counts.update(page)
                return
            # A push wrote the document after the page was read, and its version cannot be
            # ordered against ours: read the record again (outside the transaction) and apply
            # what it holds now, rather than skip a change the feed will not bring again.
            old = changes[stale]
            read_at[stale] = utcnow()
            fresh = await self.connector.fetch(old.object_type, old.external_id)
            if fresh is None:
                del changes[stale], read_at[stale]
            else:
                changes[stale] = RemoteChange(
                    old.object_type, fresh.external_id, fresh.version, fresh.fields, old.updated_at
                )
        raise PullBusy("documents of the page are being pushed; the page is pulled again later")

    async def _apply(
        self,
        session: AsyncSession,
        repo: IntegrationsRepository,
        change: RemoteChange,
        fetched_at: datetime,
        problems: list[dict[str, Any]],
    ) -> str:
        kind = change.object_type
        ref = await repo.ref_by_external(
            self.connector_id, kind.value, change.external_id, lock=True
        )
        if ref is None:
            return await self._unknown(session, repo, change, problems)
        now = utcnow()
        if ref.lease_until is not None and ref.lease_until > now:
            raise _Busy
        # Seeing a version again is harmless: the merge finds nothing left to do (both sides
        # hold what was taken over, open conflicts hold their fields). What must not happen
        # is applying a record older than one a push has since seen and written over.
        order = _order(change.version, ref.remote_version)
        if order is not None and order < 0:
            return "unchanged"
        if (
            order is None
            and change.version != ref.remote_version
            and ref.synced_at is not None
            and ref.synced_at >= fetched_at
        ):
            raise _Stale(change)
        applier = APPLIERS.get(kind)
        if applier is None:
            return "ignored"
        try:
            async with session.begin_nested():
                return await self._merge(session, repo, ref, change, applier)
        except InvalidChange as exc:
            problems.append(_problem(change, f"rejected: {exc}", our_id=ref.our_id))
            log.warning(
                "connector_pull_rejected",
                object_type=kind.value,
                external_id=change.external_id,
                reason=str(exc),
            )
            return "rejected"

    async def _merge(
        self,
        session: AsyncSession,
        repo: IntegrationsRepository,
        ref: ExternalRef,
        change: RemoteChange,
        applier: Any,
    ) -> str:
        kind = change.object_type
        document = await applier.load(session, ref.our_id)
        ours = self.connector.map_out(kind, document)
        theirs = {name: change.fields[name] for name in ours if name in change.fields}
        conflict = await repo.open_conflict(ref.id) if ref.state == "conflict" else None
        held = frozenset(f["field"] for f in conflict.fields) if conflict else frozenset()
        plan = plan_pull(
            ours=ours,
            theirs=theirs,
            last_ours=ref.last_ours,
            last_theirs=ref.last_theirs,
            ownership=lambda name: self.connector.ownership(kind, name),
            held=held,
        )
        for name in plan.ignored:
            log.debug(
                "connector_pull_field_ignored",
                reason="ours",
                object_type=kind.value,
                our_id=ref.our_id,
                field=name,
            )
        local: dict[str, Any] = {}
        taken: dict[str, Any] = {}
        for name, value in plan.apply.items():
            our_field = self.connector.local_field(kind, name)
            if our_field is None or our_field not in applier.applicable:
                log.debug(
                    "connector_pull_field_ignored",
                    reason="not applicable",
                    object_type=kind.value,
                    our_id=ref.our_id,
                    field=name,
                )
                continue
            local[our_field] = value
            taken[name] = value
        if local:
            await applier.apply(session, ref.our_id, local, current=document)
        # Both sides now hold the values taken over: they are the new base of the merge.
        # Fields not taken over keep their base, so the push side still sees who changed what.
        last_ours = dict(ref.last_ours or {})
        last_theirs = dict(ref.last_theirs or {})
        for name, value in taken.items():
            last_ours[name] = value
            last_theirs[name] = value
        ref.last_ours = last_ours
        ref.last_theirs = last_theirs
        ref.remote_version = change.version
        ref.synced_at = utcnow()
        if plan.conflicts:
            ref.state = "conflict"
            record = RemoteRecord(change.external_id, change.version, change.fields)
            await queue_conflict(session, repo, ref, record, ours, plan.conflicts)
            return "conflicted"
        if taken:
            return "applied"
        return "ignored" if plan.ignored or plan.apply else "unchanged"

    async def _unknown(
        self,
        session: AsyncSession,
        repo: IntegrationsRepository,
        change: RemoteChange,
        problems: list[dict[str, Any]],
    ) -> str:
        kind = change.object_type
        reference = change.fields.get(self.connector.reference_name())
        if reference not in (None, ""):
            if await repo.ref(self.connector_id, kind.value, str(reference)) is not None:
                # One of ours whose create went unanswered (or a second copy of it): the push
                # side links it, and reconciliation reports a duplicate. Never created here.
                return "ignored"
            problems.append(_problem(change, f"carries reference {reference} but no mapping"))
            return "unknown"
        applier = APPLIERS.get(kind)
        if applier is None or not applier.creatable or not self.connector.pull_creates_unknown():
            problems.append(_problem(change, "no mapping: not one of our documents"))
            log.info(
                "connector_pull_unknown", object_type=kind.value, external_id=change.external_id
            )
            return "unknown"
        fields: dict[str, Any] = {}
        for name, value in change.fields.items():
            our_field = self.connector.local_field(kind, name)
            if our_field is not None and our_field in applier.creatable:
                fields[our_field] = value
        try:
            async with session.begin_nested():
                our_id = await applier.create(session, fields)
                if our_id is None:
                    raise InvalidChange(f"{kind.value} documents are not created from outside")
                ours = self.connector.map_out(kind, await applier.load(session, our_id))
                theirs = {name: change.fields.get(name) for name in ours}
                repo.add(
                    ExternalRef(
                        id=uuid7(),
                        tenant_id=self.tenant_id,
                        connector_id=self.connector_id,
                        object_type=kind.value,
                        our_id=our_id,
                        external_id=change.external_id,
                        remote_version=change.version,
                        state="synced",
                        last_ours=ours,
                        last_theirs=theirs,
                        attempts=0,
                        synced_at=utcnow(),
                    )
                )
                await session.flush()
        except InvalidChange as exc:
            problems.append(_problem(change, f"not created: {exc}"))
            return "rejected"
        return "created"


def _problem(change: RemoteChange, reason: str, *, our_id: str | None = None) -> dict[str, Any]:
    return {
        "object_type": change.object_type.value,
        "external_id": change.external_id,
        "version": change.version,
        "our_id": our_id,
        "reason": reason[:300],
        "at": utcnow().isoformat(),
    }


# -- running pulls -----------------------------------------------------------------------------


def pull_kinds() -> list[str]:
    """Connector kinds that declare `pull_changes`."""
    return sorted(
        kind
        for kind, plugin in available().items()
        if issubclass(plugin, DocumentConnector) and Capability.PULL_CHANGES in plugin.capabilities
    )


async def pull_instance(
    db: Database, keyring: Keyring, instance: ConnectorInstance, *, lease_seconds: float = 300.0
) -> PullResult:
    """One pull of one instance (its plugin opened and closed here)."""
    plugin = service.open_plugin(instance, keyring)
    if not isinstance(plugin, DocumentConnector) or not plugin.supports_pull():
        # Configured not to pull: look again at its schedule, not on every tick.
        cron = plugin.pull_cron() if isinstance(plugin, DocumentConnector) else DEFAULT_PULL_CRON
        await _defer(db, instance, cron, error=None)
        return PullResult(status="off", error=f"{instance.name} does not pull changes")
    await plugin.open()
    try:
        puller = ChangePuller(
            db=db,
            tenant_id=instance.tenant_id,
            connector_id=instance.id,
            connector=plugin,
            lease_seconds=lease_seconds,
        )
        return await puller.run()
    finally:
        await plugin.close()


_DUE = text(
    """
    SELECT ci.tenant_id, ci.id
    FROM connector_instances ci
    LEFT JOIN connector_pulls p ON p.connector_id = ci.id
    WHERE ci.enabled AND NOT ci.paused AND ci.kind = ANY(:kinds)
      AND (p.connector_id IS NULL
           OR ((p.requested_at IS NOT NULL OR p.next_pull_at IS NULL OR p.next_pull_at <= now())
               AND (p.running_until IS NULL OR p.running_until < now())))
    ORDER BY p.requested_at NULLS LAST, p.next_pull_at NULLS FIRST
    LIMIT :limit
    """
)


async def run_due(db: Database, keyring: Keyring, *, limit: int = 20) -> int:
    """Pull every enabled, unpaused instance whose schedule is due or that was asked to."""
    kinds = pull_kinds()
    if not kinds:
        return 0
    async with db.system_session() as session:
        rows = (await session.execute(_DUE, {"kinds": kinds, "limit": limit})).all()
        await session.commit()
    done = 0
    for tenant_id, connector_id in rows:
        async with db.tenant_session(tenant_id) as session:
            instance = await IntegrationsRepository(session, tenant_id).instance(connector_id)
            await session.commit()
        if instance is None:
            continue
        try:
            result = await pull_instance(db, keyring, instance)
        except Exception as exc:  # e.g. a config the plugin no longer accepts: the others go on
            log.exception("connector_pull_failed", connector_id=str(connector_id))
            await _defer(db, instance, DEFAULT_PULL_CRON, error=f"{type(exc).__name__}: {exc}")
            continue
        log.info(
            "connector_pulled",
            connector_id=str(connector_id),
            status=result.status,
            error=result.error,
            **result.counts,
        )
        done += 1
    return done


async def _defer(
    db: Database, instance: ConnectorInstance, cron: str, *, error: str | None
) -> None:
    async with db.tenant_session(instance.tenant_id) as session:
        row = await IntegrationsRepository(session, instance.tenant_id).pull_state_for_update(
            instance.id
        )
        now = utcnow()
        row.next_pull_at = next_tick(cron, now)
        row.requested_at = None
        if error is not None:
            row.last_error = error[:2000]
            row.last_error_at = now
            row.consecutive_failures += 1
        await session.commit()


async def request_pull(session: AsyncSession, instance: ConnectorInstance) -> ConnectorPull:
    """Ask for a pull now (the worker's pull job starts it within seconds)."""
    row = await IntegrationsRepository(session, instance.tenant_id).pull_state_for_update(
        instance.id
    )
    row.requested_at = utcnow()
    await session.flush()
    return row
