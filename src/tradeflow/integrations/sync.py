"""Pushing one document to a document connector, exactly once in effect.

Never a remote call inside a database transaction. Each push is:

1. **lease** (short transaction): take the document's row in the external-id
   map with a lease, so one sync of a document runs at a time across workers;
2. **reconcile before create**: without a known external id, *always* search
   the remote by our reference first — a previous attempt may have created
   the record and then timed out, crashed or been killed before we recorded
   it. Only when nothing is there do we record what we are about to send
   (`pending`, with the time, committed) and create. After an unanswered
   create the search waits until the connector's settle time has passed, so
   a request the remote was still processing cannot be missed and repeated;
3. **merge before update**: with an external id, read the record; if it
   changed since our last sync, per-field ownership decides
   (`integrations.merge`); a stale write (412) re-reads and re-merges;
4. **outcome** (short transaction, fenced on the lease token): the external
   id, the remote version, what each side now holds, and any conflict
   (queued once, with a `sync.conflict` event).

A failure raises a `ConnectorError`; the delivery engine retries the
delivery, and the next attempt starts again at step 1 — which is why step 2
must look before it creates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import Database
from tradeflow.events.outbox import publish
from tradeflow.integrations.appliers import APPLIERS, InvalidChange
from tradeflow.integrations.events import ConflictField, SyncConflictRaised
from tradeflow.integrations.merge import FieldConflict, plan_merge
from tradeflow.integrations.models import ExternalRef, SyncConflict
from tradeflow.integrations.plugins import (
    ConnectorError,
    DocumentConnector,
    ObjectType,
    RateLimited,
    RemoteRecord,
    VersionMismatch,
)
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

MAX_MERGE_ROUNDS = 4


class DocumentBusy(ConnectorError):
    """Another sync of the same document holds its lease; retried later."""


class Settling(RateLimited):
    """Not yet: an earlier, unanswered create must have settled before we look it up."""


class LeaseLost(ConnectorError):
    """Our lease on the document expired and another sync took it over; its outcome stands."""


@dataclass(frozen=True, slots=True)
class PushResult:
    external_id: str
    action: str  # created, linked, updated, unchanged
    conflicts: int = 0


@dataclass
class DocumentSync:
    """Pushes documents of one tenant to one connector instance."""

    db: Database
    tenant_id: uuid.UUID
    connector_id: uuid.UUID
    connector: DocumentConnector
    lease_seconds: float = 60.0
    busy_wait_seconds: float = 5.0
    max_settle_wait: float = 0.0  # wait this long in place for a create to settle, else retry

    async def _lease(
        self, object_type: ObjectType, our_id: str
    ) -> tuple[ExternalRef, uuid.UUID, frozenset[str]]:
        deadline = time.monotonic() + self.busy_wait_seconds
        delay = 0.05
        while True:
            async with self.db.tenant_session(self.tenant_id) as session:
                repo = IntegrationsRepository(session, self.tenant_id)
                leased = await repo.lease_ref(
                    self.connector_id, object_type.value, our_id, lease_seconds=self.lease_seconds
                )
                held: frozenset[str] = frozenset()
                if leased is not None:
                    conflict = await repo.open_conflict(leased[0].id)
                    if conflict is not None:
                        held = frozenset(f["field"] for f in conflict.fields)
                await session.commit()
            if leased is not None:
                return leased[0], leased[1], held
            if time.monotonic() >= deadline:
                raise DocumentBusy(
                    f"{object_type.value} {our_id} is being synced by another worker"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _release(self, ref: ExternalRef, token: uuid.UUID, error: str | None) -> None:
        async with self.db.tenant_session(self.tenant_id) as session:
            repo = IntegrationsRepository(session, self.tenant_id)
            row = await repo.ref_fenced(ref.id, token)
            if row is not None:
                row.lease_until = None
                row.lease_token = None
                row.last_error = error
            await session.commit()

    async def _note_pending(
        self, ref: ExternalRef, token: uuid.UUID, fields: dict[str, Any]
    ) -> None:
        """Record what we are about to create, committed before the remote call."""
        async with self.db.tenant_session(self.tenant_id) as session:
            row = await IntegrationsRepository(session, self.tenant_id).ref_fenced(ref.id, token)
            if row is None:
                raise LeaseLost("lease lost before create")
            row.pending = {"fields": fields, "sent_at": utcnow().isoformat()}
            await session.commit()

    async def push(
        self,
        object_type: ObjectType,
        our_id: str,
        document: dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]],
    ) -> PushResult:
        """Push one document. Pass a loader rather than a dict when the document can change:
        it is read *under the lease*, so a sync that waited for another never pushes an older
        version over the newer one that sync just wrote."""
        ref, token, held = await self._lease(object_type, our_id)
        try:
            loaded = document if isinstance(document, dict) else await document()
            ours = self.connector.map_out(object_type, loaded)
            result = await self._push_leased(object_type, our_id, ours, ref, token, held)
        except ConnectorError as exc:
            await self._release(ref, token, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            await asyncio.shield(self._release(ref, token, "interrupted"))
            raise
        return result

    async def _push_leased(
        self,
        object_type: ObjectType,
        our_id: str,
        ours: dict[str, Any],
        ref: ExternalRef,
        token: uuid.UUID,
        held: frozenset[str],
    ) -> PushResult:
        last_ours = ref.last_ours
        last_theirs = ref.last_theirs
        record: RemoteRecord | None = None
        action = "updated"
        if ref.external_id is None:
            pending = ref.pending or {}
            if "sent_at" in pending:
                # An earlier create went unanswered. The remote may still be working on it:
                # look only once it has had time to finish, or the look would miss it.
                sent_at = datetime.fromisoformat(str(pending["sent_at"]))
                wait = self.connector.settle_seconds() - (utcnow() - sent_at).total_seconds()
                if wait > 0 and self.max_settle_wait > 0:
                    # Wait in place as long as this attempt can afford; retry for the rest.
                    await asyncio.sleep(min(wait, self.max_settle_wait))
                    wait -= self.max_settle_wait
                if wait > 0:
                    raise Settling(
                        f"{object_type.value} {our_id}: an earlier create is unanswered; "
                        f"looking it up in {wait:.1f} s",
                        retry_after=wait,
                    )
            found = await self.connector.find_by_reference(object_type, our_id)
            if found:
                # An earlier attempt got through before we heard back: link, do not create.
                record = min(found, key=lambda r: _natural_key(r.external_id))
                base = pending.get("fields") or ours
                last_ours, last_theirs = base, base
                action = "linked"
                if len(found) > 1:
                    log.error(
                        "sync_remote_duplicates",
                        object_type=object_type.value,
                        our_id=our_id,
                        external_ids=[r.external_id for r in found],
                    )
            else:
                await self._note_pending(ref, token, ours)
                record = await self.connector.create(object_type, ours, reference=our_id)
                await self._finish(ref, token, record, ours, _pick(record.fields, ours), [], ours)
                return PushResult(record.external_id, "created")
        else:
            record = await self.connector.fetch(object_type, ref.external_id)
            if record is None:
                raise ConnectorError(
                    f"{object_type.value} {ref.external_id} no longer exists at the remote"
                )

        conflicts: list[FieldConflict] = []
        kept: frozenset[str] = frozenset()
        for _ in range(MAX_MERGE_ROUNDS):
            theirs = _pick(record.fields, ours)
            plan = plan_merge(
                ours=ours,
                theirs=theirs,
                last_ours=last_ours,
                last_theirs=last_theirs,
                ownership=lambda name: self.connector.ownership(object_type, name),
                held=held,
            )
            conflicts = plan.conflicts
            kept = frozenset(plan.kept_theirs)
            if not plan.writes:
                if action != "linked":
                    action = "unchanged"
                break
            try:
                record = await self.connector.update(
                    object_type, record.external_id, plan.writes, if_version=record.version
                )
                break
            except VersionMismatch:
                # Someone at the remote edited it between our read and our write: look again.
                fresh = await self.connector.fetch(object_type, record.external_id)
                if fresh is None:
                    raise ConnectorError(
                        f"{object_type.value} {record.external_id} vanished during sync"
                    ) from None
                record = fresh
        else:
            raise VersionMismatch(
                f"{object_type.value} {record.external_id} kept changing during sync"
            )
        await self._finish(
            ref,
            token,
            record,
            ours,
            _pick(record.fields, ours),
            conflicts,
            ours,
            held=held,
            keep_base=kept,
        )
        return PushResult(record.external_id, action, len(conflicts))

    async def _finish(
        self,
        ref: ExternalRef,
        token: uuid.UUID,
        record: RemoteRecord,
        ours: dict[str, Any],
        theirs: dict[str, Any],
        conflicts: list[FieldConflict],
        full_ours: dict[str, Any],
        *,
        held: frozenset[str] = frozenset(),
        keep_base: frozenset[str] = frozenset(),
    ) -> None:
        async with self.db.tenant_session(self.tenant_id) as session:
            repo = IntegrationsRepository(session, self.tenant_id)
            row = await repo.ref_fenced(ref.id, token)
            if row is None:
                raise LeaseLost(f"lease on {ref.object_type} {ref.our_id} was taken over")
            # While a field is held by an open conflict, its bases stay where the conflict
            # started, so the conflict is judged against what both sides last agreed on. The
            # same for a field whose remote edit we kept: the two sides do not agree on it
            # yet, and a base moved to their value would make our old value look like a change
            # of ours on the next push (or hide their change from the next pull).
            last_ours = dict(ours)
            last_theirs = dict(theirs)
            for name in held | keep_base | {c.field for c in conflicts}:
                if row.last_ours is not None and name in row.last_ours:
                    last_ours[name] = row.last_ours[name]
                if row.last_theirs is not None and name in row.last_theirs:
                    last_theirs[name] = row.last_theirs[name]
            row.external_id = record.external_id
            row.remote_version = record.version
            row.last_ours = last_ours
            row.last_theirs = last_theirs
            row.pending = None
            row.lease_until = None
            row.lease_token = None
            row.last_error = None
            row.synced_at = utcnow()
            row.state = "conflict" if (conflicts or held) else "synced"
            if conflicts:
                await queue_conflict(session, repo, row, record, full_ours, conflicts)
            await session.commit()

    async def apply_resolution(self, conflict_id: uuid.UUID) -> str:
        """Write a resolved conflict's values to the remote; returns what was done."""
        async with self.db.tenant_session(self.tenant_id) as session:
            conflict = await IntegrationsRepository(session, self.tenant_id).conflict(conflict_id)
            await session.commit()
        if conflict is None or conflict.status != "resolving":
            return "nothing to apply"
        object_type = ObjectType(conflict.object_type)
        ref, token, _ = await self._lease(object_type, conflict.our_id)
        try:
            values = dict(conflict.resolved_values or {})
            if ref.external_id is None:
                raise ConnectorError("the document has no external id")
            record = await self.connector.fetch(object_type, ref.external_id)
            if record is None:
                raise ConnectorError(f"{conflict.object_type} {ref.external_id} no longer exists")
            for _ in range(MAX_MERGE_ROUNDS):
                writes = {k: v for k, v in values.items() if record.fields.get(k) != v}
                if conflict.resolution == "theirs" or not writes:
                    break
                try:
                    record = await self.connector.update(
                        object_type, record.external_id, writes, if_version=record.version
                    )
                    break
                except VersionMismatch:
                    fresh = await self.connector.fetch(object_type, record.external_id)
                    if fresh is None:
                        raise ConnectorError("the record vanished") from None
                    record = fresh
            else:
                raise VersionMismatch("the record kept changing while applying the resolution")
        except ConnectorError as exc:
            await self._release(ref, token, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            await asyncio.shield(self._release(ref, token, "interrupted"))
            raise
        async with self.db.tenant_session(self.tenant_id) as session:
            repo = IntegrationsRepository(session, self.tenant_id)
            row = await repo.ref_fenced(ref.id, token)
            locked = await repo.conflict(conflict_id, lock=True)
            if row is None or locked is None:
                raise LeaseLost("lease lost while applying a resolution")
            fields = [f["field"] for f in locked.fields]
            adopted = await self._adopt(session, object_type, row.our_id, conflict, record)
            last_ours = dict(row.last_ours or {})
            last_theirs = dict(row.last_theirs or {})
            for name in fields:
                # Both sides now agree on the resolved value; our next change of the field
                # (and only that) is pushed again.
                last_ours[name] = adopted.get(name, locked.ours.get(name))
                last_theirs[name] = record.fields.get(name)
            row.last_ours = last_ours
            row.last_theirs = last_theirs
            row.remote_version = record.version
            row.state = "synced"
            row.lease_until = None
            row.lease_token = None
            row.last_error = None
            row.synced_at = utcnow()
            locked.status = "resolved"
            await session.commit()
        return f"applied {conflict.resolution}"

    async def _adopt(
        self,
        session: AsyncSession,
        object_type: ObjectType,
        our_id: str,
        conflict: SyncConflict,
        record: RemoteRecord,
    ) -> dict[str, Any]:
        """Take the decided values over into our own document where its owning context lets
        a connected system change them (`appliers`), so taking theirs (or a merge) holds on
        our side too instead of being pushed over by our old value. Returns what was taken."""
        applier = APPLIERS.get(object_type)
        if applier is None or conflict.resolution == "ours":
            return {}
        values = conflict.resolved_values or {}
        local: dict[str, Any] = {}
        taken: dict[str, Any] = {}
        for f in conflict.fields:
            name = f["field"]
            # "theirs" means what the remote holds now, not when the conflict was found.
            value = record.fields.get(name) if conflict.resolution == "theirs" else values.get(name)
            our_field = self.connector.local_field(object_type, name)
            if our_field is not None and our_field in applier.applicable:
                local[our_field] = value
                taken[name] = value
        if not local:
            return {}
        try:
            async with session.begin_nested():
                await applier.apply(session, our_id, local)
        except InvalidChange as exc:
            log.warning("sync_resolution_not_adopted", our_id=our_id, reason=str(exc))
            return {}
        return taken


async def queue_conflict(
    session: AsyncSession,
    repo: IntegrationsRepository,
    ref: ExternalRef,
    record: RemoteRecord,
    ours: dict[str, Any],
    conflicts: list[FieldConflict],
) -> None:
    """Open a conflict for the document (or add fields to its open one) and publish
    `sync.conflict`; the push and the pull side both land here."""
    fields = [
        {"field": c.field, "base": c.base, "ours": c.ours, "theirs": c.theirs} for c in conflicts
    ]
    existing = await repo.open_conflict(ref.id)
    if existing is not None:
        known = {f["field"] for f in existing.fields}
        existing.fields = existing.fields + [f for f in fields if f["field"] not in known]
        existing.theirs = record.fields
        existing.ours = ours
        existing.remote_version = record.version
        return
    conflict = SyncConflict(
        id=uuid7(),
        tenant_id=ref.tenant_id,
        connector_id=ref.connector_id,
        ref_id=ref.id,
        object_type=ref.object_type,
        our_id=ref.our_id,
        external_id=record.external_id,
        remote_version=record.version,
        fields=fields,
        ours=ours,
        theirs=record.fields,
        status="open",
    )
    repo.add(conflict)
    await session.flush()
    await publish(
        session,
        SyncConflictRaised(
            conflict_id=conflict.id,
            connector_id=ref.connector_id,
            object_type=ref.object_type,
            object_id=ref.our_id,
            external_id=record.external_id,
            fields=[ConflictField(**f) for f in fields],
        ),
        tenant_id=ref.tenant_id,
        aggregate_id=conflict.id,
    )


def _pick(fields: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    return {name: fields.get(name) for name in like}


def _natural_key(external_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in external_id if ch.isdigit())
    return (int(digits) if digits else 0, external_id)
