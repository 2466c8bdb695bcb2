"""Every query of the ledger. Built per tenant: each statement filters on `tenant_id` here,
and row-level security filters again underneath."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, exists, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.kit.ids import uuid7
from tradeflow.kit.pagination import (
    InvalidCursor,
    PageRequest,
    decode_cursor,
    encode_cursor,
    paginate,
)
from tradeflow.ledger.chart import DefaultAccount
from tradeflow.ledger.models import Account, Entry, Line


@dataclass(frozen=True, slots=True)
class NewLine:
    account_id: uuid.UUID
    debit_minor: int
    credit_minor: int
    customer_id: uuid.UUID | None
    memo: str | None


@dataclass(frozen=True, slots=True)
class EntryFilters:
    source_event_id: uuid.UUID | None = None
    source_event_type: str | None = None
    kind: str | None = None
    currency: str | None = None
    account_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    invoice_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    order_id: uuid.UUID | None = None
    posted_from: datetime | None = None
    posted_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class BalanceRow:
    account_id: uuid.UUID
    currency: str
    debit_minor: int
    credit_minor: int


@dataclass(frozen=True, slots=True)
class StatementRow:
    line_id: uuid.UUID
    entry_id: uuid.UUID
    posted_at: datetime
    description: str
    memo: str | None
    customer_id: uuid.UUID | None
    debit_minor: int
    credit_minor: int


_LINES = cast(Table, Line.__table__)


def _check_cursor(page: PageRequest, *types: type) -> None:
    """Refuse a cursor whose values are not of the list's key types: `paginate` would pass
    them to PostgreSQL, which fails on the type mismatch (a 500, not a 400)."""
    if not page.cursor:
        return
    values = decode_cursor(page.cursor, arity=len(types))
    if not all(isinstance(v, t) for v, t in zip(values, types, strict=True)):
        raise InvalidCursor("The cursor is not one this list issued; start again without `cursor`.")


class LedgerRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    # -- accounts ---------------------------------------------------------------------------

    async def system_accounts(self) -> dict[str, uuid.UUID]:
        rows = await self.session.execute(
            select(Account.system_key, Account.id).where(
                Account.tenant_id == self.tenant_id, Account.system_key.is_not(None)
            )
        )
        return {str(key): account_id for key, account_id in rows.all()}

    async def seed_accounts(self, accounts: Iterable[DefaultAccount]) -> None:
        """Insert the default accounts that are missing; concurrent seeders do not collide."""
        values = [
            {
                "id": uuid7(),
                "tenant_id": self.tenant_id,
                "code": a.code,
                "name": a.name,
                "type": a.type.value,
                "normal_balance": a.normal_balance.value,
                "system_key": a.key,
                "description": a.description,
            }
            for a in accounts
        ]
        if values:
            await self.session.execute(insert(Account).values(values).on_conflict_do_nothing())

    async def add_account(
        self, *, code: str, name: str, type: str, normal_balance: str, description: str
    ) -> Account | None:
        """The new account, or None when the code is taken."""
        account_id = await self.session.scalar(
            insert(Account)
            .values(
                id=uuid7(),
                tenant_id=self.tenant_id,
                code=code,
                name=name,
                type=type,
                normal_balance=normal_balance,
                description=description,
            )
            .on_conflict_do_nothing()
            .returning(Account.id)
        )
        return None if account_id is None else await self.account(account_id)

    async def account(self, account_id: uuid.UUID) -> Account | None:
        return await self.session.scalar(
            select(Account).where(Account.tenant_id == self.tenant_id, Account.id == account_id)
        )

    async def accounts_by_ids(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
        wanted = set(ids)
        if not wanted:
            return {}
        rows = await self.session.scalars(
            select(Account).where(Account.tenant_id == self.tenant_id, Account.id.in_(wanted))
        )
        return {a.id: a for a in rows}

    async def accounts_by_codes(self, codes: Iterable[str]) -> dict[str, Account]:
        wanted = set(codes)
        if not wanted:
            return {}
        rows = await self.session.scalars(
            select(Account).where(Account.tenant_id == self.tenant_id, Account.code.in_(wanted))
        )
        return {a.code: a for a in rows}

    async def list_accounts(
        self, page: PageRequest, *, type: str | None = None
    ) -> tuple[list[Account], str | None]:
        _check_cursor(page, str)
        stmt = select(Account).where(Account.tenant_id == self.tenant_id)
        if type is not None:
            stmt = stmt.where(Account.type == type)
        return await paginate(self.session, stmt, page, order_by=[Account.code], descending=False)

    # -- entries ----------------------------------------------------------------------------

    async def insert_entry(
        self,
        *,
        entry_id: uuid.UUID,
        kind: str,
        currency: str,
        description: str,
        occurred_at: datetime,
        refs: dict[str, str],
        posted_by: str | None,
        source_event_id: uuid.UUID | None = None,
        source_event_type: str | None = None,
        reverses_entry_id: uuid.UUID | None = None,
    ) -> datetime | None:
        """Write the entry header and return its `posted_at`; None if its key is taken.

        The key is the source event (or the reversed entry): a second posting of one
        event waits for the first transaction, then finds the row and inserts nothing.
        """
        return await self.session.scalar(
            insert(Entry)
            .values(
                id=entry_id,
                tenant_id=self.tenant_id,
                kind=kind,
                currency=currency,
                description=description,
                source_event_id=source_event_id,
                source_event_type=source_event_type,
                reverses_entry_id=reverses_entry_id,
                refs=refs,
                occurred_at=occurred_at,
                posted_by=posted_by,
            )
            .on_conflict_do_nothing()
            .returning(Entry.posted_at)
        )

    async def insert_lines(
        self, *, entry_id: uuid.UUID, currency: str, posted_at: datetime, lines: Sequence[NewLine]
    ) -> None:
        # A Core executemany: the compiled INSERT is cached (a multi-VALUES statement would
        # be compiled anew for every entry) and the driver pipelines the rows.
        await self.session.execute(
            insert(_LINES),
            [
                {
                    "id": uuid7(),
                    "tenant_id": self.tenant_id,
                    "entry_id": entry_id,
                    "line_no": n,
                    "account_id": line.account_id,
                    "currency": currency,
                    "debit_minor": line.debit_minor,
                    "credit_minor": line.credit_minor,
                    "customer_id": line.customer_id,
                    "memo": line.memo,
                    "posted_at": posted_at,
                }
                for n, line in enumerate(lines, start=1)
            ],
        )

    async def entry(self, entry_id: uuid.UUID) -> Entry | None:
        return await self.session.scalar(
            select(Entry).where(Entry.tenant_id == self.tenant_id, Entry.id == entry_id)
        )

    async def entry_by_source(self, source_event_id: uuid.UUID) -> Entry | None:
        return await self.session.scalar(
            select(Entry).where(
                Entry.tenant_id == self.tenant_id, Entry.source_event_id == source_event_id
            )
        )

    async def reversals_of(self, entry_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        wanted = set(entry_ids)
        if not wanted:
            return {}
        rows = await self.session.execute(
            select(Entry.reverses_entry_id, Entry.id).where(
                Entry.tenant_id == self.tenant_id, Entry.reverses_entry_id.in_(wanted)
            )
        )
        return {
            reversed_id: entry_id
            for reversed_id, entry_id in rows.tuples().all()
            if reversed_id is not None
        }

    async def lines_of(self, entry_ids: Iterable[uuid.UUID]) -> list[tuple[Line, str]]:
        wanted = set(entry_ids)
        if not wanted:
            return []
        rows = await self.session.execute(
            select(Line, Account.code)
            .join(Account, Account.id == Line.account_id)
            .where(Line.tenant_id == self.tenant_id, Line.entry_id.in_(wanted))
            .order_by(Line.entry_id, Line.line_no)
        )
        return [(line, code) for line, code in rows.tuples().all()]

    async def list_entries(
        self, filters: EntryFilters, page: PageRequest
    ) -> tuple[list[Entry], str | None]:
        _check_cursor(page, uuid.UUID)
        stmt: Select[Any] = select(Entry).where(Entry.tenant_id == self.tenant_id)
        f = filters
        if f.source_event_id is not None:
            stmt = stmt.where(Entry.source_event_id == f.source_event_id)
        if f.source_event_type is not None:
            stmt = stmt.where(Entry.source_event_type == f.source_event_type)
        if f.kind is not None:
            stmt = stmt.where(Entry.kind == f.kind)
        if f.currency is not None:
            stmt = stmt.where(Entry.currency == f.currency)
        if f.posted_from is not None:
            stmt = stmt.where(Entry.posted_at >= f.posted_from)
        if f.posted_to is not None:
            stmt = stmt.where(Entry.posted_at < f.posted_to)
        refs = {
            k: str(v)
            for k, v in (
                ("invoice_id", f.invoice_id),
                ("payment_id", f.payment_id),
                ("order_id", f.order_id),
            )
            if v is not None
        }
        if refs:
            stmt = stmt.where(Entry.refs.contains(refs))
        line_conditions = []
        if f.account_id is not None:
            line_conditions.append(Line.account_id == f.account_id)
        if f.customer_id is not None:
            line_conditions.append(Line.customer_id == f.customer_id)
        if line_conditions:
            stmt = stmt.where(
                exists().where(
                    Line.tenant_id == self.tenant_id, Line.entry_id == Entry.id, *line_conditions
                )
            )
        return await paginate(self.session, stmt, page, order_by=[Entry.id])

    async def customer_of_invoice(self, invoice_id: uuid.UUID) -> uuid.UUID | None:
        """The customer an invoice was booked against, from the invoice's own entry."""
        value = await self.session.scalar(
            select(Entry.refs["customer_id"].astext)
            .where(
                Entry.tenant_id == self.tenant_id,
                Entry.refs.contains({"invoice_id": str(invoice_id)}),
                Entry.refs.has_key("customer_id"),
            )
            .limit(1)
        )
        return uuid.UUID(value) if value else None

    async def invoice_postings(self, invoice_id: uuid.UUID) -> dict[tuple[str, str], int]:
        """What event entries booked for one invoice, by (source event type, system key of
        the account): debits − credits (so a credit to revenue or tax is negative)."""
        rows = await self.session.execute(
            select(
                Entry.source_event_type,
                Account.system_key,
                func.sum(Line.debit_minor - Line.credit_minor),
            )
            .join(Line, and_(Line.entry_id == Entry.id, Line.tenant_id == Entry.tenant_id))
            .join(Account, Account.id == Line.account_id)
            .where(
                Entry.tenant_id == self.tenant_id,
                Entry.refs.contains({"invoice_id": str(invoice_id)}),
                Entry.source_event_type.is_not(None),
                Account.system_key.is_not(None),
            )
            .group_by(Entry.source_event_type, Account.system_key)
        )
        return {(str(t), str(k)): int(v) for t, k, v in rows.all()}

    # -- reports ----------------------------------------------------------------------------

    async def balances(
        self, *, as_of: datetime | None = None, currency: str | None = None
    ) -> list[BalanceRow]:
        """Debit and credit totals per (account, currency) — the trial balance's rows."""
        stmt = (
            select(
                Line.account_id,
                Line.currency,
                func.sum(Line.debit_minor),
                func.sum(Line.credit_minor),
            )
            .where(Line.tenant_id == self.tenant_id)
            .group_by(Line.account_id, Line.currency)
        )
        if as_of is not None:
            stmt = stmt.where(Line.posted_at <= as_of)
        if currency is not None:
            stmt = stmt.where(Line.currency == currency)
        rows = await self.session.execute(stmt)
        return [BalanceRow(a, c, int(d), int(cr)) for a, c, d, cr in rows.tuples().all()]

    async def account_currencies(self, account_id: uuid.UUID) -> list[str]:
        """The lowest and highest currency the account holds (one item if only one, none if
        empty): two index look-ups, however many lines the account has."""
        low, high = (
            await self.session.execute(
                select(func.min(Line.currency), func.max(Line.currency)).where(
                    Line.tenant_id == self.tenant_id, Line.account_id == account_id
                )
            )
        ).one()
        return [c for c in dict.fromkeys((low, high)) if c is not None]

    async def sum_before(
        self,
        *,
        account_id: uuid.UUID,
        currency: str,
        before: datetime | None = None,
        through: tuple[datetime, uuid.UUID] | None = None,
    ) -> tuple[int, int]:
        """Debits and credits of the account strictly before `before`, or up to and including
        the line keyed `through` (posted_at, id)."""
        conditions = [
            Line.tenant_id == self.tenant_id,
            Line.account_id == account_id,
            Line.currency == currency,
        ]
        if through is not None:
            conditions.append(tuple_(Line.posted_at, Line.id) <= tuple_(*through))
        elif before is not None:
            conditions.append(Line.posted_at < before)
        else:
            return 0, 0
        row = (
            await self.session.execute(
                select(
                    func.coalesce(func.sum(Line.debit_minor), 0),
                    func.coalesce(func.sum(Line.credit_minor), 0),
                ).where(*conditions)
            )
        ).one()
        return int(row[0]), int(row[1])

    async def statement_page(
        self,
        *,
        account_id: uuid.UUID,
        currency: str,
        page: PageRequest,
        posted_from: datetime | None,
        posted_to: datetime | None,
    ) -> tuple[list[StatementRow], tuple[datetime, uuid.UUID] | None, str | None]:
        """One page of the account's lines, oldest first; also the decoded cursor."""
        after: tuple[datetime, uuid.UUID] | None = None
        stmt = (
            select(
                Line.id,
                Line.entry_id,
                Line.posted_at,
                Entry.description,
                Line.memo,
                Line.customer_id,
                Line.debit_minor,
                Line.credit_minor,
            )
            .join(Entry, and_(Entry.tenant_id == Line.tenant_id, Entry.id == Line.entry_id))
            .where(
                Line.tenant_id == self.tenant_id,
                Line.account_id == account_id,
                Line.currency == currency,
            )
        )
        if page.cursor:
            posted_at, line_id = decode_cursor(page.cursor, arity=2)
            if not (
                isinstance(posted_at, datetime)
                and posted_at.tzinfo is not None
                and isinstance(line_id, uuid.UUID)
            ):
                raise InvalidCursor(
                    "The cursor is not one this statement issued; start again without `cursor`."
                )
            after = (posted_at, line_id)
            stmt = stmt.where(tuple_(Line.posted_at, Line.id) > tuple_(posted_at, line_id))
        if posted_from is not None:
            stmt = stmt.where(Line.posted_at >= posted_from)
        if posted_to is not None:
            stmt = stmt.where(Line.posted_at < posted_to)
        stmt = stmt.order_by(Line.posted_at, Line.id).limit(page.limit + 1)
        rows = [StatementRow(*r) for r in (await self.session.execute(stmt)).tuples().all()]
        next_cursor = None
        if len(rows) > page.limit:
            rows = rows[: page.limit]
            next_cursor = encode_cursor([rows[-1].posted_at, rows[-1].line_id])
        return rows, after, next_cursor

    async def customer_balances(
        self, *, customer_id: uuid.UUID, account_ids: Sequence[uuid.UUID], as_of: datetime | None
    ) -> list[BalanceRow]:
        stmt = (
            select(
                Line.account_id,
                Line.currency,
                func.sum(Line.debit_minor),
                func.sum(Line.credit_minor),
            )
            .where(
                Line.tenant_id == self.tenant_id,
                Line.customer_id == customer_id,
                Line.account_id.in_(list(account_ids)),
            )
            .group_by(Line.account_id, Line.currency)
        )
        if as_of is not None:
            stmt = stmt.where(Line.posted_at <= as_of)
        rows = await self.session.execute(stmt)
        return [BalanceRow(a, c, int(d), int(cr)) for a, c, d, cr in rows.tuples().all()]

    async def book_counts(self) -> tuple[int, int]:
        entries = await self.session.scalar(
            select(func.count()).select_from(Entry).where(Entry.tenant_id == self.tenant_id)
        )
        lines = await self.session.scalar(
            select(func.count()).select_from(Line).where(Line.tenant_id == self.tenant_id)
        )
        return int(entries or 0), int(lines or 0)

    async def unbalanced_entries(self, *, limit: int) -> list[uuid.UUID]:
        """Entries whose lines do not balance, or that have fewer than two (should be none)."""
        sums = (
            select(
                Line.entry_id,
                func.count().label("n"),
                func.sum(Line.debit_minor).label("d"),
                func.sum(Line.credit_minor).label("c"),
            )
            .where(Line.tenant_id == self.tenant_id)
            .group_by(Line.entry_id)
            .subquery()
        )
        rows = await self.session.scalars(
            select(Entry.id)
            .outerjoin(sums, sums.c.entry_id == Entry.id)
            .where(
                Entry.tenant_id == self.tenant_id,
                (sums.c.n.is_(None)) | (sums.c.n < 2) | (sums.c.d != sums.c.c),
            )
            .limit(limit)
        )
        return list(rows)
