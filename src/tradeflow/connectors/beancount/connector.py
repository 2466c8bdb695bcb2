"""Beancount connector: the tenant's journal as a plain-text Beancount ledger file.

The file is an export of our ledger, appended to as entries are posted:

    option "title" "Tradeflow journal"
    option "operating_currency" "EUR"

    2000-01-01 open Assets:1100-AccountsReceivable
      tradeflow_account: "1100"

    2026-11-21 * "Invoice 2026-000001 issued"
      tradeflow_entry_id: "0193…"
      tradeflow_source: "invoice.issued"
      invoice_id: "0193…"
      Assets:1100-AccountsReceivable   119.00 EUR
      Income:4000-SalesRevenue        -100.00 EUR
      Liabilities:2100-SalesTaxPayable -19.00 EUR

Each of our entries appears once: its id is in the metadata, and appending
takes an exclusive `flock` on the file, re-reads which ids are already there,
and writes only the missing ones — so a retried or concurrent export never
duplicates an entry (reconcile before retry, with the file as the remote).
Accounts get an `open` directive (dated 2000-01-01, before any entry) the
first time an entry uses them. A partially written tail (a crash mid-write)
is cut back to the last complete entry before appending.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from tradeflow.integrations.plugins import (
    Capability,
    ConnectorConfig,
    JournalConnector,
    JournalEntry,
    JournalLine,
)
from tradeflow.kit.currency import MINOR_UNITS

OPEN_DATE = "2000-01-01"
ROOTS = {
    "asset": "Assets",
    "liability": "Liabilities",
    "equity": "Equity",
    "revenue": "Income",
    "expense": "Expenses",
}
_ENTRY_ID = re.compile(r'^\s+tradeflow_entry_id:\s*"([^"]+)"', re.MULTILINE)
_OPEN = re.compile(
    r'^\d{4}-\d\d-\d\d open (\S+)[^\n]*\n\s+tradeflow_account:\s*"([^"]+)"', re.MULTILINE
)
END_MARK = "; end "  # closes every block we write: a block without it is a torn write


class BeancountConfig(ConnectorConfig):
    path: str = Field(description="Absolute path of the ledger file (created if missing).")
    title: str = Field(default="Tradeflow journal", max_length=200)
    operating_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    account_names: dict[str, str] = Field(
        default_factory=dict,
        description="Our account code → Beancount account name, overriding the derived one.",
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError("must be an absolute path")
        return value


def account_name(line: JournalLine, overrides: dict[str, str]) -> str:
    if line.account_code in overrides:
        return overrides[line.account_code]
    root = ROOTS.get(line.account_type, "Equity")
    words = re.findall(r"[A-Za-z0-9]+", line.account_name)
    label = "".join(w[:1].upper() + w[1:] for w in words)
    code = re.sub(r"[^A-Za-z0-9]", "-", line.account_code).strip("-")
    component = f"{code}-{label}" if label else code
    # A Beancount account component starts with a capital letter or a digit.
    if not (component[:1].isdigit() or component[:1].isupper()):
        component = "A" + component
    return f"{root}:{component}"


def amount_text(minor: int, currency: str) -> str:
    exponent = MINOR_UNITS.get(currency, 2)
    value = Decimal(minor).scaleb(-exponent)
    return f"{value:.{exponent}f} {currency}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "/").replace('"', "'").replace("\n", " ") + '"'


def _meta_key(name: str) -> str:
    key = re.sub(r"[^a-zA-Z0-9_-]", "_", name)
    return key if key[:1].islower() else "x" + key


@dataclass
class FileIndex:
    entry_ids: set[str] = field(default_factory=set)
    accounts: dict[str, str] = field(default_factory=dict)  # our code → Beancount name
    size: int = 0


def scan(text: str) -> FileIndex:
    return FileIndex(
        entry_ids=set(_ENTRY_ID.findall(text)),
        accounts={code: name for name, code in _OPEN.findall(text)},
        size=len(text.encode()),
    )


def render_entry(entry: JournalEntry, names: dict[str, str]) -> str:
    lines = [f"{entry.entry_date.isoformat()} * {_quote(entry.description)}"]
    lines.append(f"  tradeflow_entry_id: {_quote(entry.id)}")
    lines.append(f"  tradeflow_source: {_quote(entry.source_type)}")
    if entry.source_id:
        lines.append(f"  tradeflow_source_id: {_quote(entry.source_id)}")
    lines.append(f"  tradeflow_posted_at: {_quote(entry.posted_at.isoformat())}")
    for key, value in sorted(entry.links.items()):
        lines.append(f"  {_meta_key(key)}: {_quote(value)}")
    for line in entry.lines:
        minor = line.debit_minor - line.credit_minor
        lines.append(f"  {names[line.account_code]}  {amount_text(minor, line.currency)}")
    lines.append(f"{END_MARK}{entry.id}")
    return "\n".join(lines) + "\n\n"


def render_open(code: str, name: str, currency: str | None = None) -> str:
    return f'{OPEN_DATE} open {name}\n  tradeflow_account: "{code}"\n{END_MARK}open {code}\n\n'


class BeancountConnector(JournalConnector):
    slug: ClassVar[str] = "beancount"
    title: ClassVar[str] = "Beancount ledger file"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.EXPORT_JOURNAL})
    config_model: ClassVar[type[ConnectorConfig]] = BeancountConfig
    event_types: ClassVar[tuple[str, ...]] = ("ledger.entry_posted",)

    config: BeancountConfig

    def __init__(self, config: ConnectorConfig) -> None:
        assert isinstance(config, BeancountConfig)
        super().__init__(config)
        self.path = Path(config.path)

    async def check(self) -> None:
        await asyncio.to_thread(self._ensure_file)

    def _header(self) -> str:
        head = [f'option "title" {_quote(self.config.title)}']
        if self.config.operating_currency:
            head.append(f'option "operating_currency" "{self.config.operating_currency}"')
        return "\n".join(head) + "\n\n"

    def _ensure_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                os.write(fd, self._header().encode())
                os.fsync(fd)
        finally:
            os.close(fd)

    async def exported_ids(self) -> set[str]:
        return await asyncio.to_thread(self._read_index_ids)

    def _read_index_ids(self) -> set[str]:
        if not self.path.exists():
            return set()
        return scan(self.path.read_text()).entry_ids

    async def append(self, entries: Iterable[JournalEntry]) -> int:
        return await asyncio.to_thread(self._append, list(entries))

    def _append(self, entries: list[JournalEntry]) -> int:
        self._ensure_file()
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = _read_all(fd)
            end = complete_end(text)
            if text[end:].strip():
                # A torn tail from a crash mid-write: cut it; its entry is written again below.
                text = text[:end]
                os.ftruncate(fd, len(text.encode()))
            out: list[str] = []
            if not text:
                out.append(self._header())
            elif not text.endswith("\n\n"):
                out.append("\n")
            index = scan(text)
            names = dict(index.accounts)
            written = 0
            for entry in sorted(entries, key=lambda e: (e.posted_at, e.id)):
                if entry.id in index.entry_ids:
                    continue
                for line in entry.lines:
                    if line.account_code not in names:
                        name = account_name(line, self.config.account_names)
                        names[line.account_code] = name
                        out.append(render_open(line.account_code, name))
                out.append(render_entry(entry, names))
                index.entry_ids.add(entry.id)
                written += 1
            if written or not text:
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, "".join(out).encode())
                os.fsync(fd)
            return written
        finally:
            os.close(fd)

    async def balances(self) -> dict[tuple[str, str], int]:
        return await asyncio.to_thread(self._balances)

    def _balances(self) -> dict[tuple[str, str], int]:
        """Per (our account code, currency), debit-positive minor units — via beancount itself."""
        from beancount import loader
        from beancount.core import data

        if not self.path.exists():
            return {}
        entries, errors, _ = loader.load_file(str(self.path))
        if errors:
            raise ValueError(f"{len(errors)} error(s) loading {self.path}: {errors[0]}")
        code_of: dict[str, str] = {}
        totals: dict[tuple[str, str], int] = {}
        for entry in entries:
            if isinstance(entry, data.Open):
                code_of[entry.account] = str(entry.meta.get("tradeflow_account", entry.account))
            elif isinstance(entry, data.Transaction):
                for posting in entry.postings:
                    units = posting.units
                    if units is None or units.number is None:
                        continue
                    exponent = MINOR_UNITS.get(units.currency, 2)
                    minor = int((units.number * (Decimal(10) ** exponent)).to_integral_value())
                    key = (code_of.get(posting.account, posting.account), units.currency)
                    totals[key] = totals.get(key, 0) + minor
        return totals


def _read_all(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def complete_end(text: str) -> int:
    """Where the last complete block (header, open directive or entry) ends.

    Every block we write ends with an `; end …` line; the header ends at its
    first blank line. Anything after that point is a torn write.
    """
    pos = len(text)
    while True:
        mark = text.rfind("\n" + END_MARK, 0, pos)
        if mark == -1:
            header_end = text.find("\n\n")
            return header_end + 2 if header_end != -1 else 0
        line_end = text.find("\n", mark + 1)
        if line_end != -1:
            return line_end + 1
        pos = mark
