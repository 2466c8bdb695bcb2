"""The books' rules hold in PostgreSQL itself — for raw SQL, for the owner, at commit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.support import make_tenant, rows
from tradeflow.db import Database
from tradeflow.ledger import service


async def _accounts(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    return await service.ensure_chart(session, tenant_id=tenant_id)


async def _raw_entry(
    s: AsyncSession,
    tenant_id: uuid.UUID,
    lines: list[tuple[uuid.UUID, int, int]],
    *,
    currency: str = "EUR",
    line_currency: str | None = None,
) -> uuid.UUID:
    entry_id = uuid.uuid4()
    await s.execute(
        text(
            "INSERT INTO ledger_entries (id, tenant_id, kind, currency, description, occurred_at) "
            "VALUES (:id, :t, 'manual', :c, 'raw', now())"
        ),
        {"id": entry_id, "t": tenant_id, "c": currency},
    )
    for n, (account_id, debit, credit) in enumerate(lines, start=1):
        await s.execute(
            text(
                "INSERT INTO ledger_lines (id, tenant_id, entry_id, line_no, account_id, currency, "
                "debit_minor, credit_minor, posted_at) "
                "VALUES (:id, :t, :e, :n, :a, :c, :d, :cr, now())"
            ),
            {
                "id": uuid.uuid4(),
                "t": tenant_id,
                "e": entry_id,
                "n": n,
                "a": account_id,
                "c": line_currency or currency,
                "d": debit,
                "cr": credit,
            },
        )
    return entry_id


async def _committed_tenant(db: Database) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    tenant_id = await make_tenant(db)
    async with db.tenant_session(tenant_id) as s:
        accounts = await _accounts(s, tenant_id)
        await s.commit()
    return tenant_id, accounts


@pytest.mark.parametrize("as_app_role", [True, False], ids=["app-role", "owner"])
async def test_unbalanced_entry_is_refused_at_commit(
    committed: Database, as_app_role: bool
) -> None:
    tenant_id, acc = await _committed_tenant(committed)
    session_of = committed.tenant_session(tenant_id) if as_app_role else committed.system_session()
    async with session_of as s:
        entry_id = await _raw_entry(
            s, tenant_id, [(acc["receivables"], 10_000, 0), (acc["revenue"], 0, 9_000)]
        )
        # Each statement succeeded: the rule is checked when the transaction commits.
        with pytest.raises(DBAPIError, match="unbalanced"):
            await s.commit()
    assert await rows(committed, "SELECT id FROM ledger_entries WHERE id = :e", e=entry_id) == []
    assert (
        await rows(committed, "SELECT id FROM ledger_lines WHERE entry_id = :e", e=entry_id) == []
    )


async def test_balanced_raw_entry_commits(committed: Database) -> None:
    tenant_id, acc = await _committed_tenant(committed)
    async with committed.system_session() as s:
        entry_id = await _raw_entry(
            s, tenant_id, [(acc["receivables"], 10_000, 0), (acc["revenue"], 0, 10_000)]
        )
        await s.commit()
    assert (
        len(await rows(committed, "SELECT 1 FROM ledger_lines WHERE entry_id = :e", e=entry_id))
        == 2
    )


@pytest.mark.parametrize("lines", [0, 1], ids=["no-lines", "one-line"])
async def test_entry_needs_two_lines(books: Database, tenant: uuid.UUID, lines: int) -> None:
    async with books.system_session() as s:
        acc = await _accounts(s, tenant)
        await _raw_entry(s, tenant, [(acc["cash"], 500, 0)][:lines])
        with pytest.raises(DBAPIError, match="unbalanced"):
            await s.execute(text("SET CONSTRAINTS ledger_entries_balanced IMMEDIATE"))


async def test_balance_check_can_be_forced_early(books: Database, tenant: uuid.UUID) -> None:
    async with books.tenant_session(tenant) as s:
        acc = await _accounts(s, tenant)
        await _raw_entry(s, tenant, [(acc["cash"], 700, 0), (acc["revenue"], 0, 600)])
        with pytest.raises(DBAPIError, match="unbalanced"):
            await s.execute(text("SET CONSTRAINTS ledger_entries_balanced IMMEDIATE"))


@pytest.mark.parametrize(
    ("debit", "credit"),
    [(100, 100), (0, 0), (-100, 0), (0, -5)],
    ids=["both-sides", "zero", "negative-debit", "negative-credit"],
)
async def test_line_amount_checks(
    books: Database, tenant: uuid.UUID, debit: int, credit: int
) -> None:
    async with books.tenant_session(tenant) as s:
        acc = await _accounts(s, tenant)
        with pytest.raises(DBAPIError, match="ck_ledger_lines"):
            await _raw_entry(s, tenant, [(acc["cash"], debit, credit)])


async def test_line_currency_must_be_the_entry_currency(books: Database, tenant: uuid.UUID) -> None:
    async with books.tenant_session(tenant) as s:
        acc = await _accounts(s, tenant)
        with pytest.raises(DBAPIError, match="must match its tenant and currency"):
            await _raw_entry(s, tenant, [(acc["cash"], 1, 0)], currency="EUR", line_currency="USD")


async def test_currency_must_be_iso_shaped(books: Database, tenant: uuid.UUID) -> None:
    async with books.tenant_session(tenant) as s:
        with pytest.raises(DBAPIError, match="ck_ledger_entries_currency"):
            await _raw_entry(s, tenant, [], currency="eur")


async def test_line_cannot_use_another_tenants_account(books: Database, tenant: uuid.UUID) -> None:
    other = await make_tenant(books)
    async with books.tenant_session(other) as s:
        foreign = await _accounts(s, other)
        await s.commit()
    async with books.system_session() as s:
        mine = await _accounts(s, tenant)
        with pytest.raises(DBAPIError, match="fk_ledger_lines_account_id"):
            await _raw_entry(s, tenant, [(mine["cash"], 5, 0), (foreign["revenue"], 0, 5)])


async def _posted_entry(db: Database) -> tuple[uuid.UUID, uuid.UUID, dict[str, uuid.UUID]]:
    tenant_id, acc = await _committed_tenant(db)
    async with db.system_session() as s:
        entry_id = await _raw_entry(s, tenant_id, [(acc["cash"], 300, 0), (acc["revenue"], 0, 300)])
        await s.commit()
    return tenant_id, entry_id, acc


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET description = 'changed' WHERE id = :e",
        "DELETE FROM ledger_entries WHERE id = :e",
        "UPDATE ledger_lines SET debit_minor = debit_minor + 1 WHERE entry_id = :e",
        "DELETE FROM ledger_lines WHERE entry_id = :e",
    ],
    ids=["update-entry", "delete-entry", "update-line", "delete-line"],
)
async def test_entries_and_lines_are_immutable(books: Database, statement: str) -> None:
    committed = books  # savepoints stand in for commits: the triggers act on every statement
    tenant_id, entry_id, _ = await _posted_entry(committed)
    # The owner role holds every privilege: only the trigger stands in the way.
    async with committed.system_session() as s:
        with pytest.raises(DBAPIError, match="immutable"):
            await s.execute(text(statement), {"e": entry_id})
    # The application role is not even granted UPDATE or DELETE.
    async with committed.tenant_session(tenant_id) as s:
        with pytest.raises(DBAPIError, match="permission denied"):
            await s.execute(text(statement), {"e": entry_id})
    found = await rows(
        committed,
        "SELECT e.description, sum(l.debit_minor) FROM ledger_entries e "
        "JOIN ledger_lines l ON l.entry_id = e.id WHERE e.id = :e GROUP BY e.description",
        e=entry_id,
    )
    assert [tuple(r) for r in found] == [("raw", 300)]


async def test_a_committed_entry_is_sealed(committed: Database) -> None:
    tenant_id, entry_id, acc = await _posted_entry(committed)
    async with committed.system_session() as s:
        params: dict[str, Any] = {"t": tenant_id, "e": entry_id}
        # A balanced pair would leave the entry balanced — still refused: it changes the entry.
        with pytest.raises(DBAPIError, match="is sealed"):
            await s.execute(
                text(
                    "INSERT INTO ledger_lines (id, tenant_id, entry_id, line_no, account_id, "
                    "currency, debit_minor, credit_minor, posted_at) VALUES "
                    "(gen_random_uuid(), :t, :e, 3, :a, 'EUR', 50, 0, now()), "
                    "(gen_random_uuid(), :t, :e, 4, :b, 'EUR', 0, 50, now())"
                ),
                {**params, "a": acc["cash"], "b": acc["revenue"]},
            )


async def test_transaction_id_cannot_be_forged(books: Database, tenant: uuid.UUID) -> None:
    tenant_id = tenant
    async with books.system_session() as s:
        entry_id = uuid.uuid4()
        await s.execute(
            # A txid from the future would keep the entry open to a later transaction.
            text(
                "INSERT INTO ledger_entries (id, tenant_id, kind, currency, description, "
                "occurred_at, txid) VALUES (:id, :t, 'manual', 'EUR', 'forged', now(), "
                "((pg_current_xact_id()::text::bigint + 5)::text)::xid8)"
            ),
            {"id": entry_id, "t": tenant_id},
        )
        stamped = (
            await s.execute(
                text("SELECT txid = pg_current_xact_id() FROM ledger_entries WHERE id = :e"),
                {"e": entry_id},
            )
        ).scalar_one()
        await s.rollback()  # the entry has no lines: it would not commit
        assert stamped is True


async def test_deleting_a_tenant_with_books_needs_the_purge_switch(
    books: Database, tenant: uuid.UUID
) -> None:
    async with books.system_session() as s:
        acc = await _accounts(s, tenant)
        await _raw_entry(s, tenant, [(acc["cash"], 9, 0), (acc["revenue"], 0, 9)])
        await s.commit()
    async with books.system_session() as s:
        with pytest.raises(DBAPIError, match="immutable"):
            await s.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant})
    async with books.system_session() as s:
        await s.execute(text("SET LOCAL tradeflow.ledger_purge = 'on'"))
        await s.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant})
        left = (
            await s.execute(
                text("SELECT count(*) FROM ledger_lines WHERE tenant_id = :t"), {"t": tenant}
            )
        ).scalar_one()
        assert left == 0
        await s.rollback()
