"""The Beancount connector's file: loads cleanly with beancount's own loader, each entry once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from beancount import loader

from tradeflow.connectors.beancount.connector import BeancountConfig, BeancountConnector
from tradeflow.integrations.plugins import JournalEntry, JournalLine

RECEIVABLES = ("1100", "Accounts receivable", "asset")
REVENUE = ("4000", "Sales revenue", "revenue")
TAX = ("2100", "Sales tax payable", "liability")
CLEARING = ("1050", "Processor clearing", "asset")


def line(account: tuple[str, str, str], debit: int, credit: int, currency: str) -> JournalLine:
    code, name, kind = account
    return JournalLine(code, name, kind, debit, credit, currency)


def invoice(total: int, tax: int, currency: str = "EUR", day: int = 3) -> JournalEntry:
    return JournalEntry(
        id=str(uuid.uuid4()),
        posted_at=datetime(2026, 11, day, 12, tzinfo=UTC),
        entry_date=date(2026, 11, day),
        description='Invoice "INV-2026-000001" issued',
        source_type="invoice.issued",
        source_id=str(uuid.uuid4()),
        lines=(
            line(RECEIVABLES, total, 0, currency),
            line(REVENUE, 0, total - tax, currency),
            *([line(TAX, 0, tax, currency)] if tax else []),
        ),
        links={"invoice_id": str(uuid.uuid4())},
    )


def payment(amount: int, currency: str = "EUR") -> JournalEntry:
    return JournalEntry(
        id=str(uuid.uuid4()),
        posted_at=datetime(2026, 11, 4, tzinfo=UTC),
        entry_date=date(2026, 11, 4),
        description="Payment captured",
        source_type="payment.captured",
        source_id=str(uuid.uuid4()),
        lines=(line(CLEARING, amount, 0, currency), line(RECEIVABLES, 0, amount, currency)),
    )


def connector(path: Path) -> BeancountConnector:
    return BeancountConnector(BeancountConfig(path=str(path), operating_currency="EUR"))


def load_clean(path: Path) -> list[object]:
    entries, errors, _ = loader.load_file(str(path))
    assert errors == []
    return list(entries)


async def test_entries_are_written_once_and_load_without_errors(tmp_path: Path) -> None:
    book = connector(tmp_path / "books" / "ledger.beancount")
    first = [invoice(11900, 1900), invoice(500, 0, "JPY"), payment(11900)]
    assert await book.append(first) == 3
    assert await book.append(first) == 0  # a retry finds them all there
    assert await book.exported_ids() == {e.id for e in first}
    text = (tmp_path / "books" / "ledger.beancount").read_text()
    assert text.count(f'tradeflow_entry_id: "{first[0].id}"') == 1
    assert "119.00 EUR" in text
    assert "500 JPY" in text
    load_clean(tmp_path / "books" / "ledger.beancount")
    assert await book.balances() == {
        ("1100", "EUR"): 0,
        ("4000", "EUR"): -10000,
        ("2100", "EUR"): -1900,
        ("1050", "EUR"): 11900,
        ("1100", "JPY"): 500,
        ("4000", "JPY"): -500,
    }


async def test_concurrent_appends_of_overlapping_batches_never_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "ledger.beancount"
    entries = [invoice(1000 + i, 0) for i in range(40)]
    books = [connector(path) for _ in range(4)]
    # Four writers, each with an overlapping half of the entries, at the same time.
    results = await asyncio.gather(
        *(b.append(entries[i * 10 : i * 10 + 20]) for i, b in enumerate(books))
    )
    assert sum(results) == 40
    assert await books[0].exported_ids() == {e.id for e in entries}
    assert len(load_clean(path)) == 40 + 2  # the entries, and one open per account used


async def test_a_torn_write_is_cut_back_and_the_entry_written_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.beancount"
    book = connector(path)
    kept, torn = invoice(100, 0, day=3), invoice(200, 0, day=5)
    await book.append([kept, torn])
    text = path.read_text()
    # Simulate a crash in the middle of writing the second entry.
    path.write_text(text[: text.index(f'tradeflow_entry_id: "{torn.id}"') + 20])
    assert await book.exported_ids() == {kept.id}
    assert await book.append([kept, torn]) == 1
    assert path.read_text().count(f'"{torn.id}"') == 1
    assert len(load_clean(path)) == 2 + 2
