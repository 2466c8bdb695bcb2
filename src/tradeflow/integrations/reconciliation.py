"""Three-way reconciliation: processor settlements ↔ ledger ↔ remote documents.

A run reads, in short transactions, what our side knows — the trial balance,
the journal entries booking invoices, payments and refunds, and what the
payments context recorded from the processor — then, outside any
transaction, asks each configured processor for its settlement listing and
each enabled connector what it holds, compares, and
records mismatches by kind with a `reconciliation.mismatch` event. A clean
run records zero.

Kinds (see docs/integrations.md):

* `ledger_unbalanced` — debits ≠ credits in a currency;
* `ledger_payment_missing` / `ledger_payment_unknown` / `ledger_amount_differs` /
  `ledger_refund_differs` — a processor capture without its journal entry, an
  entry without a capture, different captured amounts, or different refunded
  amounts (against what payments heard from the processor through events);
* `processor_capture_unknown` / `processor_amount_differs` / `processor_refund_differs` /
  `processor_fee_differs` / `processor_unreadable` — against the processor's own
  settlement listing (`settlements.compare_processor_books`): a capture the
  processor made that Tradeflow never heard of, different captured, refunded or
  fee totals, or a listing that could not be read;
* `remote_missing` / `remote_duplicate` / `remote_amount_differs` /
  `remote_unknown` — a booked invoice or payment absent at a document
  connector, present more than once, with another amount, or a document we
  pushed there that our books do not hold;
* `journal_entry_missing` / `journal_entry_unknown` / `journal_balance_differs` /
  `journal_unreadable` — a journal connector (Beancount) lacking an entry,
  holding one we do not have, with an account balance different from our
  trial balance, or failing to load at all.

Work still in flight is not a mismatch: entries posted during the last
`grace_seconds` are left out of the comparison.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from tradeflow.db import Database
from tradeflow.events.outbox import publish
from tradeflow.integrations import service, settlements
from tradeflow.integrations.documents import decimal_text
from tradeflow.integrations.events import ReconciliationMismatchFound
from tradeflow.integrations.models import (
    ConnectorInstance,
    ReconciliationMismatch,
    ReconciliationRun,
)
from tradeflow.integrations.plugins import (
    ConnectorPlugin,
    DocumentConnector,
    JournalConnector,
    ObjectType,
)
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.kit.ids import uuid7
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow
from tradeflow.ledger import chart
from tradeflow.ledger import service as ledger
from tradeflow.ledger.schemas import EntryOut
from tradeflow.payments import settlements as processor_books

log = structlog.get_logger(__name__)

MAX_DETAILED = 1000  # mismatches stored one by one per run; the counts are always complete


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str
    object_type: str
    object_id: str
    detail: dict[str, Any] = field(default_factory=dict)
    connector_id: uuid.UUID | None = None


@dataclass
class Books:
    """What our ledger booked, by document (amounts in minor units)."""

    invoices: dict[str, tuple[int, str]] = field(default_factory=dict)
    payments: dict[str, tuple[int, str]] = field(default_factory=dict)
    refunds: dict[str, tuple[int, str]] = field(default_factory=dict)
    refunded_by_payment: dict[str, int] = field(default_factory=dict)
    payment_fees: dict[str, int] = field(default_factory=dict)  # processor fees booked
    payment_first_posted: dict[str, datetime] = field(default_factory=dict)
    entry_ids: set[str] = field(default_factory=set)
    recent_entry_ids: set[str] = field(default_factory=set)  # posted inside the grace window
    recent_docs: set[str] = field(default_factory=set)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)  # (code, ccy) → Dr − Cr
    unbalanced: list[tuple[str, int, int]] = field(default_factory=list)


async def read_books(db: Database, tenant_id: uuid.UUID, *, cutoff: datetime) -> Books:
    books = Books()
    async with db.tenant_session(tenant_id) as session:
        tb = await ledger.trial_balance(session, tenant_id=tenant_id)
        for row in tb.accounts:
            books.balances[(row.code, row.currency)] = row.debit_minor - row.credit_minor
        books.unbalanced = [
            (t.currency, t.debit_minor, t.credit_minor) for t in tb.totals if not t.balanced
        ]
        cursor: str | None = None
        while True:
            page = await ledger.list_entries(
                session,
                tenant_id=tenant_id,
                filters=ledger.EntryFilters(),
                page=PageRequest(cursor=cursor, limit=200),
            )
            for entry in page.items:
                entry_id = str(entry.id)
                books.entry_ids.add(entry_id)
                recent = entry.posted_at > cutoff
                if recent:
                    books.recent_entry_ids.add(entry_id)
                target: dict[str, tuple[int, str]] | None = None
                key = None
                if entry.source_event_type == "invoice.issued":
                    target, key = books.invoices, entry.refs.get("invoice_id")
                elif entry.source_event_type == "payment.captured":
                    target, key = books.payments, entry.refs.get("payment_id")
                elif entry.source_event_type == "refund.succeeded":
                    target, key = books.refunds, entry.refs.get("refund_id")
                if target is not None and key is not None:
                    if entry.reversed_by_entry_id is None:
                        amount, ccy = target.get(key, (0, entry.currency))
                        target[key] = (amount + entry.total_minor, ccy)
                        if target is books.payments:
                            _note_payment(books, key, entry)
                        if target is books.refunds and "payment_id" in entry.refs:
                            paid_back = books.refunded_by_payment.get(entry.refs["payment_id"], 0)
                            books.refunded_by_payment[entry.refs["payment_id"]] = (
                                paid_back + entry.total_minor
                            )
                    if recent:
                        books.recent_docs.add(key)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        await session.commit()
    return books


_FEES_CODE = next(a.code for a in chart.DEFAULT_CHART if a.key == chart.PROCESSOR_FEES)


def _note_payment(books: Books, payment_id: str, entry: EntryOut) -> None:
    """The processor fee a capture entry booked, and when the payment was first booked."""
    fee = sum(
        line.debit_minor - line.credit_minor
        for line in entry.lines
        if line.account_code == _FEES_CODE
    )
    books.payment_fees[payment_id] = books.payment_fees.get(payment_id, 0) + fee
    first = books.payment_first_posted.get(payment_id)
    if first is None or entry.posted_at < first:
        books.payment_first_posted[payment_id] = entry.posted_at


def compare_processor(books: Books, settled: dict[str, settlements.Settlement]) -> list[Mismatch]:
    out: list[Mismatch] = []
    for payment_id, s in settled.items():
        if s.captured_minor == 0 or payment_id in books.recent_docs or s.recent:
            continue
        booked = books.payments.get(payment_id)
        if booked is None:
            out.append(
                Mismatch(
                    "ledger_payment_missing",
                    "payment",
                    payment_id,
                    {"captured_minor": s.captured_minor, "currency": s.currency},
                )
            )
        elif booked != (s.captured_minor, s.currency):
            out.append(
                Mismatch(
                    "ledger_amount_differs",
                    "payment",
                    payment_id,
                    {
                        "ledger_minor": booked[0],
                        "processor_minor": s.captured_minor,
                        "currency": s.currency,
                    },
                )
            )
    for payment_id, s in settled.items():
        if payment_id in books.recent_docs or s.recent:
            continue
        booked_back = books.refunded_by_payment.get(payment_id, 0)
        if booked_back != s.refunded_minor:
            out.append(
                Mismatch(
                    "ledger_refund_differs",
                    "payment",
                    payment_id,
                    {
                        "ledger_minor": booked_back,
                        "processor_minor": s.refunded_minor,
                        "currency": s.currency,
                    },
                )
            )
    for payment_id, (amount, ccy) in books.payments.items():
        if payment_id not in settled and payment_id not in books.recent_docs and amount:
            out.append(
                Mismatch(
                    "ledger_payment_unknown",
                    "payment",
                    payment_id,
                    {"ledger_minor": amount, "currency": ccy},
                )
            )
    return out


async def compare_documents(
    instance: ConnectorInstance,
    plugin: DocumentConnector,
    books: Books,
    pushed: dict[str, set[str]],
) -> tuple[list[Mismatch], dict[str, int]]:
    """Our booked invoices and payments against the remote's records (remote calls)."""
    out: list[Mismatch] = []
    checked: dict[str, int] = {}
    for object_type, ours in (
        (ObjectType.INVOICE, books.invoices),
        (ObjectType.PAYMENT, books.payments),
    ):
        if not plugin.supports(object_type):
            continue
        records = await plugin.list_all(object_type)
        reference = plugin.reference_name()
        by_ref: dict[str, list[Any]] = defaultdict(list)
        for record in records:
            ref = record.fields.get(reference)
            if ref is not None:
                by_ref[str(ref)].append(record)
        amount_field = plugin.remote_field(
            object_type, "total" if object_type is ObjectType.INVOICE else "amount"
        )
        checked[f"{instance.name}:{object_type.value}"] = len(ours)
        for our_id, (amount, ccy) in ours.items():
            if our_id in books.recent_docs or amount == 0:
                continue
            found = by_ref.get(our_id, [])
            kind = object_type.value
            if not found:
                out.append(Mismatch("remote_missing", kind, our_id, {}, instance.id))
                continue
            if len(found) > 1:
                out.append(
                    Mismatch(
                        "remote_duplicate",
                        kind,
                        our_id,
                        {"external_ids": [r.external_id for r in found]},
                        instance.id,
                    )
                )
            if amount_field is not None:
                expected = decimal_text(amount, ccy)
                theirs = found[0].fields.get(amount_field)
                if theirs is not None and str(theirs) != expected:
                    out.append(
                        Mismatch(
                            "remote_amount_differs",
                            kind,
                            our_id,
                            {
                                "ours": expected,
                                "theirs": theirs,
                                "external_id": found[0].external_id,
                            },
                            instance.id,
                        )
                    )
        # Records whose reference we never pushed are not ours to judge (another system or a
        # person created them); one we did push but never booked is a gap in the books.
        mine = pushed.get(object_type.value, set())
        for ref, found in by_ref.items():
            if ref in mine and ref not in ours and ref not in books.recent_docs:
                out.append(
                    Mismatch(
                        "remote_unknown",
                        object_type.value,
                        ref,
                        {"external_ids": [r.external_id for r in found]},
                        instance.id,
                    )
                )
    return out, checked


async def compare_journal(
    instance: ConnectorInstance, plugin: JournalConnector, books: Books
) -> tuple[list[Mismatch], dict[str, int]]:
    out: list[Mismatch] = []
    exported = await plugin.exported_ids()
    for entry_id in sorted(books.entry_ids - exported - books.recent_entry_ids):
        out.append(Mismatch("journal_entry_missing", "journal_entry", entry_id, {}, instance.id))
    for entry_id in sorted(exported - books.entry_ids):
        out.append(Mismatch("journal_entry_unknown", "journal_entry", entry_id, {}, instance.id))
    if not books.recent_entry_ids:
        # Balances are comparable only when nothing is in flight.
        try:
            theirs = await plugin.balances()
        except ValueError as exc:
            out.append(
                Mismatch(
                    "journal_unreadable",
                    "journal",
                    instance.name,
                    {"error": str(exc)[:500]},
                    instance.id,
                )
            )
            return out, {f"{instance.name}:journal_entries": len(exported)}
        for key in sorted(set(theirs) | set(books.balances)):
            ours_value, theirs_value = books.balances.get(key, 0), theirs.get(key, 0)
            if ours_value != theirs_value:
                out.append(
                    Mismatch(
                        "journal_balance_differs",
                        "account",
                        f"{key[0]}:{key[1]}",
                        {"ledger_minor": ours_value, "journal_minor": theirs_value},
                        instance.id,
                    )
                )
    return out, {f"{instance.name}:journal_entries": len(exported)}


@dataclass
class Reconciler:
    db: Database
    keyring: Keyring
    tenant_id: uuid.UUID
    grace_seconds: float = 0.0
    # How far back the processors' own listings are read at each run.
    settlement_window: timedelta = timedelta(days=90)

    async def start(self, trigger: str) -> uuid.UUID:
        async with self.db.tenant_session(self.tenant_id) as session:
            run = ReconciliationRun(
                id=uuid7(),
                tenant_id=self.tenant_id,
                trigger=trigger,
                status="running",
                started_at=utcnow(),
                mismatch_count=0,
                counts={},
                checked={},
            )
            session.add(run)
            await session.commit()
        return run.id

    async def run(self, trigger: str = "manual", *, run_id: uuid.UUID | None = None) -> uuid.UUID:
        run_id = run_id or await self.start(trigger)
        try:
            mismatches, checked = await self.check()
            error = None
        except Exception as exc:
            log.exception("reconciliation_failed", tenant_id=str(self.tenant_id))
            mismatches, checked, error = [], {}, f"{type(exc).__name__}: {exc}"
        await self._finish(run_id, mismatches, checked, error)
        return run_id

    async def check(self) -> tuple[list[Mismatch], dict[str, int]]:
        cutoff = utcnow() - timedelta(seconds=self.grace_seconds)
        books = await read_books(self.db, self.tenant_id, cutoff=cutoff)
        mismatches = [
            Mismatch("ledger_unbalanced", "currency", ccy, {"debit_minor": d, "credit_minor": c})
            for ccy, d, c in books.unbalanced
        ]
        checked: dict[str, int] = {
            "ledger_entries": len(books.entry_ids),
            "ledger_invoices": len(books.invoices),
            "ledger_payments": len(books.payments),
        }
        async with self.db.tenant_session(self.tenant_id) as session:
            settled = await settlements.processor_settlements(
                session, self.tenant_id, cutoff=cutoff
            )
            sources = await processor_books.settlement_sources(
                session, self.keyring, tenant_id=self.tenant_id
            )
            repo = IntegrationsRepository(session, self.tenant_id)
            instances = list(await repo.enabled_instances())
            pushed: dict[uuid.UUID, dict[str, set[str]]] = {}
            for instance in instances:
                pushed[instance.id] = {
                    kind.value: {r.our_id for r in await repo.refs_of(instance.id, kind.value)}
                    for kind in (ObjectType.INVOICE, ObjectType.PAYMENT)
                }
            await session.commit()
        checked["processor_payments"] = len(settled)
        mismatches += compare_processor(books, settled)
        # The processors' own books, asked outside any transaction.
        since = utcnow() - self.settlement_window
        listings = [await processor_books.fetch_settlements(s, since=since) for s in sources]
        found_there, seen_there = settlements.compare_processor_books(
            books, settled, listings, since=since, cutoff=cutoff
        )
        mismatches += found_there
        checked.update(seen_there)
        for instance in instances:
            plugin: ConnectorPlugin = service.open_plugin(instance, self.keyring)
            await plugin.open()
            try:
                if isinstance(plugin, DocumentConnector):
                    found, seen = await compare_documents(
                        instance, plugin, books, pushed[instance.id]
                    )
                elif isinstance(plugin, JournalConnector):
                    found, seen = await compare_journal(instance, plugin, books)
                else:
                    continue
            finally:
                await plugin.close()
            mismatches += found
            checked.update(seen)
        return mismatches, checked

    async def _finish(
        self,
        run_id: uuid.UUID,
        mismatches: list[Mismatch],
        checked: dict[str, int],
        error: str | None,
    ) -> None:
        counts = dict(Counter(m.kind for m in mismatches))
        async with self.db.tenant_session(self.tenant_id) as session:
            run = await IntegrationsRepository(session, self.tenant_id).run(run_id)
            assert run is not None
            run.finished_at = utcnow()
            run.mismatch_count = len(mismatches)
            run.counts = counts
            run.checked = checked
            run.error = error
            run.status = "failed" if error else ("mismatches" if mismatches else "clean")
            for m in mismatches[:MAX_DETAILED]:
                session.add(
                    ReconciliationMismatch(
                        id=uuid7(),
                        tenant_id=self.tenant_id,
                        run_id=run_id,
                        kind=m.kind,
                        connector_id=m.connector_id,
                        object_type=m.object_type,
                        object_id=m.object_id[:200],
                        detail=m.detail,
                    )
                )
            if mismatches:
                await publish(
                    session,
                    ReconciliationMismatchFound(
                        run_id=run_id, mismatch_count=len(mismatches), counts=counts
                    ),
                    tenant_id=self.tenant_id,
                    aggregate_id=run_id,
                )
            await session.commit()
        log.info(
            "reconciliation_finished",
            tenant_id=str(self.tenant_id),
            run_id=str(run_id),
            mismatches=len(mismatches),
            counts=counts,
            error=error,
        )
