"""Posting rules as pure functions: whatever the amounts, a draft balances and every line is
one positive side (Hypothesis)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from tradeflow.ledger import chart, rules

amounts = st.integers(min_value=0, max_value=10**12)
methods = st.sampled_from([None, "sandbox", "bank_transfer", "cash", "card"])


def _check(draft: rules.Draft | None, expected_total: int) -> None:
    if expected_total == 0:
        assert draft is None
        return
    assert draft is not None
    assert len(draft.lines) >= 2
    for line in draft.lines:
        assert (line.debit_minor > 0) != (line.credit_minor > 0)
        assert line.debit_minor >= 0
        assert line.credit_minor >= 0
        assert line.account in chart.DEFAULT_KEYS
    debits = sum(line.debit_minor for line in draft.lines)
    assert debits == sum(line.credit_minor for line in draft.lines)


@given(total=amounts, tax_share=st.floats(min_value=0, max_value=1))
def test_invoice_drafts_balance(total: int, tax_share: float) -> None:
    tax = int(total * tax_share)
    facts = rules.InvoiceFacts(
        invoice_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        currency="EUR",
        tax_minor=tax,
        total_minor=total,
    )
    draft = rules.invoice_issued(facts)
    _check(draft, total)
    if draft is not None:
        receivable = sum(x.debit_minor for x in draft.lines if x.account == chart.RECEIVABLES)
        assert receivable == total


@given(amount=amounts, fee=st.one_of(st.none(), amounts), method=methods)
def test_payment_drafts_balance(amount: int, fee: int | None, method: str | None) -> None:
    facts = rules.PaymentFacts(
        payment_id=uuid.uuid4(), amount_minor=amount, currency="USD", fee_minor=fee, method=method
    )
    draft = rules.payment_captured(facts, customer_id=uuid.uuid4())
    _check(draft, amount)
    if draft is not None:
        cleared = sum(x.credit_minor for x in draft.lines if x.account == chart.RECEIVABLES)
        assert cleared == amount
        settle = {x.account for x in draft.lines} & {chart.CASH, chart.PROCESSOR_CLEARING}
        assert settle <= {
            chart.CASH if method in ("bank_transfer", "cash") else chart.PROCESSOR_CLEARING
        }


@given(amount=amounts, method=methods)
def test_refund_drafts_balance(amount: int, method: str | None) -> None:
    facts = rules.RefundFacts(
        payment_id=uuid.uuid4(), amount_minor=amount, currency="JPY", method=method
    )
    _check(rules.refund_succeeded(facts, customer_id=None), amount)
