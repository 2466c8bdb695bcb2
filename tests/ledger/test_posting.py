"""Posting business events: the rules' lines, exactly once, reversals, and the reports."""

from __future__ import annotations

import uuid

import pytest

from ledger.support import by_code, invoice_payload, payment_payload, post, read_entry, rows
from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.pagination import PageRequest
from tradeflow.ledger import service
from tradeflow.ledger.errors import (
    EntryAlreadyReversed,
    EntryNotFound,
    InvalidEventPayload,
    PostingDeferred,
)
from tradeflow.ledger.repository import EntryFilters


async def test_invoice_books_receivable_revenue_and_tax(books: Database, tenant: uuid.UUID) -> None:
    customer = uuid.uuid4()
    payload = invoice_payload(customer_id=customer, total=12_100, tax=2_100)
    result = await post(books, tenant, "invoice.issued", payload)
    assert result.created
    entry = await read_entry(books, tenant, result.entry_id)
    assert by_code(entry) == {"1100": (12_100, 0), "4000": (0, 10_000), "2100": (0, 2_100)}
    assert entry.currency == "EUR"  # type: ignore[attr-defined]
    assert entry.refs["invoice_id"] == payload["invoice_id"]  # type: ignore[attr-defined]
    assert entry.total_minor == 12_100  # type: ignore[attr-defined]
    receivable = next(l for l in entry.lines if l.account_code == "1100")  # type: ignore[attr-defined]  # noqa: E741
    assert receivable.customer_id == customer


async def test_one_event_is_posted_once(books: Database, tenant: uuid.UUID) -> None:
    event_id = uuid7()
    payload = invoice_payload(customer_id=uuid.uuid4(), total=5_000)
    first = await post(books, tenant, "invoice.issued", payload, event_id=event_id)
    again = await post(books, tenant, "invoice.issued", payload, event_id=event_id)
    assert first.created
    assert not again.created
    assert again.entry_id == first.entry_id
    found = await rows(
        books, "SELECT count(*) FROM ledger_entries WHERE source_event_id = :e", e=event_id
    )
    assert found[0][0] == 1


async def test_payment_with_fee_clears_the_receivable(books: Database, tenant: uuid.UUID) -> None:
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=10_000)
    await post(books, tenant, "invoice.issued", invoice)
    # The payment event does not carry the customer: the ledger finds it from the invoice.
    paid = await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=10_000, fee=290),
    )
    entry = await read_entry(books, tenant, paid.entry_id)
    assert by_code(entry) == {"1050": (9_710, 0), "6100": (290, 0), "1100": (0, 10_000)}
    async with books.tenant_session(tenant) as s:
        balance = await service.customer_balance(s, tenant_id=tenant, customer_id=customer)
    assert [(b.currency, b.balance_minor) for b in balance.balances] == [("EUR", 0)]


async def test_bank_transfer_goes_to_cash(books: Database, tenant: uuid.UUID) -> None:
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=700)
    await post(books, tenant, "invoice.issued", invoice)
    paid = await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=700, method="bank_transfer"),
    )
    assert by_code(await read_entry(books, tenant, paid.entry_id)) == {
        "1000": (700, 0),
        "1100": (0, 700),
    }


async def test_fee_larger_than_payment_still_balances(books: Database, tenant: uuid.UUID) -> None:
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=10)
    await post(books, tenant, "invoice.issued", invoice)
    paid = await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=10, fee=30),
    )
    assert by_code(await read_entry(books, tenant, paid.entry_id)) == {
        "6100": (30, 0),
        "1050": (0, 20),
        "1100": (0, 10),
    }


async def test_payment_before_its_invoice_is_deferred(books: Database, tenant: uuid.UUID) -> None:
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=2_000)
    payment = payment_payload(invoice_id=invoice["invoice_id"], amount=2_000)
    with pytest.raises(PostingDeferred):
        await post(books, tenant, "payment.captured", payment)
    await post(books, tenant, "invoice.issued", invoice)
    assert (await post(books, tenant, "payment.captured", payment)).created


async def test_refund_debits_refunds(books: Database, tenant: uuid.UUID) -> None:
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=4_000)
    await post(books, tenant, "invoice.issued", invoice)
    refund = payment_payload(invoice_id=invoice["invoice_id"], amount=1_500)
    result = await post(books, tenant, "refund.succeeded", refund)
    entry = await read_entry(books, tenant, result.entry_id)
    assert by_code(entry) == {"4100": (1_500, 0), "1050": (0, 1_500)}
    assert all(line.customer_id == customer for line in entry.lines)  # type: ignore[attr-defined]


async def test_zero_amounts_book_nothing(books: Database, tenant: uuid.UUID) -> None:
    result = await post(
        books, tenant, "invoice.issued", invoice_payload(customer_id=uuid.uuid4(), total=0)
    )
    assert result.entry_id is None
    assert result.skipped_reason


@pytest.mark.parametrize(
    "payload",
    [
        {
            "invoice_id": "not-a-uuid",
            "customer_id": str(uuid.uuid4()),
            "currency": "EUR",
            "total_minor": 1,
        },
        invoice_payload(customer_id=uuid.uuid4(), total=100, tax=200),
        invoice_payload(customer_id=uuid.uuid4(), total=-5),
        invoice_payload(customer_id=uuid.uuid4(), total=100, currency="euro"),
    ],
    ids=["bad-id", "tax-over-total", "negative", "bad-currency"],
)
async def test_unbookable_payloads_are_refused(
    books: Database, tenant: uuid.UUID, payload: dict[str, object]
) -> None:
    with pytest.raises(InvalidEventPayload):
        await post(books, tenant, "invoice.issued", payload)
    assert await rows(books, "SELECT 1 FROM ledger_entries WHERE tenant_id = :t", t=tenant) == []


async def test_reversal_mirrors_the_entry_once(books: Database, tenant: uuid.UUID) -> None:
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=1_210, tax=210)
    original = await post(books, tenant, "invoice.issued", invoice)
    assert original.entry_id is not None
    async with books.tenant_session(tenant) as s:
        reversal = await service.reverse_entry(
            s, tenant_id=tenant, entry_id=original.entry_id, posted_by="user:test"
        )
        await s.commit()
    assert reversal.kind == "reversal"
    assert reversal.reverses_entry_id == original.entry_id
    assert by_code(reversal) == {"1100": (0, 1_210), "4000": (1_000, 0), "2100": (210, 0)}
    reread = await read_entry(books, tenant, original.entry_id)
    assert reread.reversed_by_entry_id == reversal.id  # type: ignore[attr-defined]
    async with books.tenant_session(tenant) as s:
        with pytest.raises(EntryAlreadyReversed):
            await service.reverse_entry(
                s, tenant_id=tenant, entry_id=original.entry_id, posted_by="user:test"
            )
        with pytest.raises(EntryNotFound):
            await service.reverse_entry(s, tenant_id=tenant, entry_id=uuid7(), posted_by=None)
        tb = await service.trial_balance(s, tenant_id=tenant)
    assert tb.balanced
    assert {(r.code, r.balance_minor) for r in tb.accounts} == {
        ("1100", 0),
        ("4000", 0),
        ("2100", 0),
    }


async def test_trial_balance_per_account_and_currency(books: Database, tenant: uuid.UUID) -> None:
    customer = uuid.uuid4()
    eur = invoice_payload(customer_id=customer, total=11_900, tax=1_900)
    usd = invoice_payload(customer_id=customer, total=5_000, currency="USD")
    await post(books, tenant, "invoice.issued", eur)
    await post(books, tenant, "invoice.issued", usd)
    await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=eur["invoice_id"], amount=5_000, fee=100),
    )
    async with books.tenant_session(tenant) as s:
        tb = await service.trial_balance(s, tenant_id=tenant)
        only_usd = await service.trial_balance(s, tenant_id=tenant, currency="USD")
        owed = await service.customer_balance(s, tenant_id=tenant, customer_id=customer)
    assert tb.balanced
    assert [(t.currency, t.debit_minor, t.credit_minor) for t in tb.totals] == [
        ("EUR", 16_900, 16_900),
        ("USD", 5_000, 5_000),
    ]
    got = {
        (r.currency, r.code): (r.debit_minor, r.credit_minor, r.balance_minor) for r in tb.accounts
    }
    assert got == {
        ("EUR", "1050"): (4_900, 0, 4_900),
        ("EUR", "1100"): (11_900, 5_000, 6_900),
        ("EUR", "2100"): (0, 1_900, 1_900),
        ("EUR", "4000"): (0, 10_000, 10_000),
        ("EUR", "6100"): (100, 0, 100),
        ("USD", "1100"): (5_000, 0, 5_000),
        ("USD", "4000"): (0, 5_000, 5_000),
    }
    assert [t.currency for t in only_usd.totals] == ["USD"]
    assert [(b.currency, b.balance_minor) for b in owed.balances] == [
        ("EUR", 6_900),
        ("USD", 5_000),
    ]


async def test_entries_filter_by_source_document_and_account(
    books: Database, tenant: uuid.UUID
) -> None:
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=3_000)
    event_id = uuid7()
    inv = await post(books, tenant, "invoice.issued", invoice, event_id=event_id)
    pay = await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=3_000),
    )
    await post(books, tenant, "invoice.issued", invoice_payload(customer_id=uuid.uuid4(), total=9))
    page = PageRequest(limit=50)
    async with books.tenant_session(tenant) as s:
        accounts = await service.ensure_chart(s, tenant_id=tenant)

        async def ids(**f: object) -> list[uuid.UUID]:
            listed = await service.list_entries(
                s,
                tenant_id=tenant,
                filters=EntryFilters(**f),
                page=page,  # type: ignore[arg-type]
            )
            return [e.id for e in listed.items]

        assert await ids(source_event_id=event_id) == [inv.entry_id]
        assert await ids(invoice_id=uuid.UUID(invoice["invoice_id"])) == [
            pay.entry_id,
            inv.entry_id,
        ]
        assert await ids(customer_id=customer) == [pay.entry_id, inv.entry_id]
        assert await ids(account_id=accounts["processor_clearing"]) == [pay.entry_id]
        assert await ids(source_event_type="payment.captured") == [pay.entry_id]
        assert len(await ids()) == 3
        first = await service.list_entries(
            s, tenant_id=tenant, filters=EntryFilters(), page=PageRequest(limit=2)
        )
        rest = await service.list_entries(
            s,
            tenant_id=tenant,
            filters=EntryFilters(),
            page=PageRequest(limit=2, cursor=first.next_cursor),
        )
        assert len(first.items) == 2
        assert len(rest.items) == 1
        assert rest.next_cursor is None
        found = await service.find_entry_by_source(s, tenant_id=tenant, source_event_id=event_id)
        assert found is not None
        assert found.id == inv.entry_id
        assert (
            await service.find_entry_by_source(s, tenant_id=tenant, source_event_id=uuid7()) is None
        )


async def test_statement_running_balance_across_pages(books: Database, tenant: uuid.UUID) -> None:
    customer = uuid.uuid4()
    amounts = [1_000, 2_000, 3_000]
    for amount in amounts:
        await post(
            books, tenant, "invoice.issued", invoice_payload(customer_id=customer, total=amount)
        )
    async with books.tenant_session(tenant) as s:
        receivables = (await service.ensure_chart(s, tenant_id=tenant))["receivables"]
        first = await service.account_statement(
            s, tenant_id=tenant, account_id=receivables, page=PageRequest(limit=2)
        )
        second = await service.account_statement(
            s,
            tenant_id=tenant,
            account_id=receivables,
            page=PageRequest(limit=2, cursor=first.next_cursor),
        )
    # Posted in one transaction here, so equal posted_at: order falls to the line id.
    assert first.opening_balance_minor == 0
    assert [i.balance_minor for i in first.items] == [1_000, 3_000]
    assert second.opening_balance_minor == 3_000
    assert [i.balance_minor for i in second.items] == [6_000]
    assert second.closing_balance_minor == 6_000
    assert second.next_cursor is None


async def test_demo_seeds_the_chart(books: Database, tenant: uuid.UUID) -> None:
    from tradeflow.ledger import demo

    assert await demo.seed(books, None, None, {"tenant_id": str(tenant)}) == {}  # type: ignore[arg-type]
    again = await demo.seed(books, None, None, {"tenant_id": str(tenant)})  # type: ignore[arg-type]
    assert again == {}
    found = await rows(books, "SELECT code FROM ledger_accounts WHERE tenant_id = :t", t=tenant)
    assert sorted(r.code for r in found) == ["1000", "1050", "1100", "2100", "4000", "4100", "6100"]
