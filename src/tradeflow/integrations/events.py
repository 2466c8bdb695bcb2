"""Event types the integrations context publishes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from tradeflow.events.catalogue import EventPayload, event_type


class ConflictField(EventPayload):
    field: str
    base: Any = Field(default=None, description="What the remote held after our last sync.")
    ours: Any = None
    theirs: Any = None


@event_type("sync.conflict", aggregate="sync_conflict")
class SyncConflictRaised(EventPayload):
    """Tradeflow and a connected system both changed the same shared field(s) of a document;
    nothing was overwritten and the conflict waits in the queue for a decision."""

    conflict_id: uuid.UUID
    connector_id: uuid.UUID
    object_type: str
    object_id: str = Field(description="Our id of the document.")
    external_id: str | None
    fields: list[ConflictField]


@event_type("sync.conflict_resolved", aggregate="sync_conflict")
class SyncConflictResolved(EventPayload):
    """A sync conflict was resolved (take ours, take theirs or an edited merge); the
    connector applies the decision to the remote system."""

    conflict_id: uuid.UUID
    connector_id: uuid.UUID
    object_type: str
    object_id: str
    resolution: str = Field(description="`ours`, `theirs` or `merge`.")


@event_type("reconciliation.mismatch", aggregate="reconciliation")
class ReconciliationMismatchFound(EventPayload):
    """A reconciliation run found processor settlements, the ledger and connected systems
    disagreeing; counts by kind (details at `/v1/reconciliations/{id}/mismatches`)."""

    run_id: uuid.UUID
    mismatch_count: int
    counts: dict[str, int] = Field(description="Mismatch kind → count.")


@event_type("connector.resync_requested", aggregate="connector")
class ConnectorResyncRequested(EventPayload):
    """A journal connector (e.g. Beancount) is to export the journal again from the ledger:
    on creation, and on replay. Entries already exported are skipped."""

    connector_id: uuid.UUID
    since: datetime | None = Field(default=None, description="Entries posted from this time.")
    cursor: str | None = Field(default=None, description="Where a long export continues.")
