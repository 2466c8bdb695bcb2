"""Events the ledger publishes: one per journal entry written, in the entry's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tradeflow.events.catalogue import EventPayload, event_type


class PostedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: int
    account_id: uuid.UUID
    account_code: str
    debit_minor: int
    credit_minor: int
    customer_id: uuid.UUID | None = None
    memo: str | None = None


@event_type("ledger.entry_posted", aggregate="ledger_entry")
class LedgerEntryPosted(EventPayload):
    """A journal entry was posted (from a business event, as a reversal, or by hand)."""

    entry_id: uuid.UUID
    kind: str = Field(description="`event`, `reversal` or `manual`.")
    currency: str = Field(description="ISO 4217 code; every line is in it.")
    description: str
    source_event_id: uuid.UUID | None = Field(
        default=None, description="The business event this entry books (kind `event`)."
    )
    source_event_type: str | None = None
    reverses_entry_id: uuid.UUID | None = Field(
        default=None, description="The entry this one reverses (kind `reversal`)."
    )
    refs: dict[str, str] = Field(
        default_factory=dict, description="Ids of the booked documents (invoice_id, payment_id…)."
    )
    occurred_at: datetime
    posted_at: datetime
    total_minor: int = Field(description="Sum of debits, equal to the sum of credits.")
    lines: list[PostedLine]
