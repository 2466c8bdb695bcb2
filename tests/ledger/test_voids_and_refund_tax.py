"""Voided invoices are booked back; refunds take their share of the invoice's tax back."""

from __future__ import annotations

import uuid

import pytest

from ledger.support import by_code, invoice_payload, payment_payload, post, read_entry
from tradeflow.db import Database
from tradeflow.ledger import service
from tradeflow.ledger.errors import PostingDeferred
from tradeflow.ledger.rules import InvoiceTax, refund_tax


async def _balances(db: Database, tenant: uuid.UUID) -> dict[str, int]:
    async with db.tenant_session(tenant) as s:
        tb = await service.trial_balance(s, tenant_id=tenant)
    assert tb.balanced
    return {r.code: r.balance_minor for r in tb.accounts}


def test_refund_tax_share_is_cumulative_and_rounds_half_up() -> None:
    invoice = InvoiceTax(total_minor=1_200, tax_minor=200)
    assert refund_tax(600, invoice) == 100
    assert refund_tax(3, invoice) == 1  # 0.5 → 1
    assert refund_tax(2, invoice) == 0  # 0.33 → 0
    # Three refunds of 1/3 each: 66.67, 66.67, 66.67 would drift; cumulative does not.
    first = refund_tax(400, invoice)
    second = refund_tax(400, InvoiceTax(1_200, 200, refunded_minor=400, tax_refunded_minor=first))
    third = refund_tax(
        400, InvoiceTax(1_200, 200, refunded_minor=800, tax_refunded_minor=first + second)
    )
    assert (first, second, third) == (67, 66, 67)
    assert first + second + third == 200
    assert refund_tax(500, None) == 0
    assert refund_tax(500, InvoiceTax(total_minor=1_000, tax_minor=0)) == 0


async def test_voided_invoice_reverses_receivable_revenue_and_tax(
    books: Database, tenant: uuid.UUID
) -> None:
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=12_100, tax=2_100)
    voided = {**invoice, "reason": "order cancelled"}
    with pytest.raises(PostingDeferred):  # its issue is not booked yet
        await post(books, tenant, "invoice.voided", voided)
    await post(books, tenant, "invoice.issued", invoice)
    result = await post(books, tenant, "invoice.voided", voided)
    assert result.created
    entry = await read_entry(books, tenant, result.entry_id)
    assert by_code(entry) == {"1100": (0, 12_100), "4000": (10_000, 0), "2100": (2_100, 0)}
    assert entry.refs["invoice_id"] == invoice["invoice_id"]  # type: ignore[attr-defined]
    assert all(line.customer_id == customer for line in entry.lines)  # type: ignore[attr-defined]
    balances = await _balances(books, tenant)
    assert (balances["1100"], balances["4000"], balances["2100"]) == (0, 0, 0)
    async with books.tenant_session(tenant) as s:
        owed = await service.customer_balance(s, tenant_id=tenant, customer_id=customer)
    assert [b.balance_minor for b in owed.balances] == [0]


async def test_refunds_split_tax_back_out_until_the_whole_tax_is_returned(
    books: Database, tenant: uuid.UUID
) -> None:
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=1_200, tax=200)
    await post(books, tenant, "invoice.issued", invoice)
    payment = payment_payload(invoice_id=invoice["invoice_id"], amount=1_200)
    await post(books, tenant, "payment.captured", payment)
    refund = payment_payload(
        invoice_id=invoice["invoice_id"], amount=400, payment_id=payment["payment_id"]
    )
    first = await post(books, tenant, "refund.succeeded", refund)
    entry = await read_entry(books, tenant, first.entry_id)
    assert by_code(entry) == {"4100": (333, 0), "2100": (67, 0), "1050": (0, 400)}
    for _ in range(2):
        await post(books, tenant, "refund.succeeded", {**refund, "refund_id": str(uuid.uuid4())})
    balances = await _balances(books, tenant)
    assert balances["2100"] == 0  # all the tax given back, not a minor unit more or less
    assert balances["4100"] == 1_000
    assert balances["1050"] == 0


async def test_a_refund_waits_for_its_invoice_to_be_booked(
    books: Database, tenant: uuid.UUID
) -> None:
    invoice = invoice_payload(customer_id=uuid.uuid4(), total=1_200, tax=200)
    refund = payment_payload(invoice_id=invoice["invoice_id"], amount=600)
    with pytest.raises(PostingDeferred):
        await post(books, tenant, "refund.succeeded", refund)
    await post(books, tenant, "invoice.issued", invoice)
    entry = await read_entry(
        books, tenant, (await post(books, tenant, "refund.succeeded", refund)).entry_id
    )
    assert by_code(entry)["2100"] == (100, 0)


async def test_a_refund_waits_for_the_invoice_even_when_its_payment_is_booked(
    books: Database, tenant: uuid.UUID
) -> None:
    """The capture (another aggregate, delivered on its own) can be booked before the
    invoice: its postings must not pass for the invoice's entry, whose tax the refund
    splits out."""
    customer = uuid.uuid4()
    invoice = invoice_payload(customer_id=customer, total=1_200, tax=200)
    await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=1_200, customer_id=str(customer)),
    )
    refund = payment_payload(invoice_id=invoice["invoice_id"], amount=600)
    with pytest.raises(PostingDeferred):
        await post(books, tenant, "refund.succeeded", refund)
    await post(books, tenant, "invoice.issued", invoice)
    entry = await read_entry(
        books, tenant, (await post(books, tenant, "refund.succeeded", refund)).entry_id
    )
    assert by_code(entry)["2100"] == (100, 0)
