"""The ledger's use cases — and its public interface for other contexts.

Nothing here commits: the request (`TenantSession`) or the event worker owns the
transaction, and the database checks the balance when it commits.

Other contexts call, with a tenant session:

* `post_event(...)` — book a business event once (the handlers do this);
* `trial_balance(...)`, `find_entry_by_source(...)`, `get_entry(...)`,
  `list_entries(...)`, `customer_balance(...)`, `account_statement(...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.events import publish
from tradeflow.kit.ids import uuid7
from tradeflow.kit.pagination import Page, PageRequest
from tradeflow.kit.time import utcnow
from tradeflow.ledger import chart, rules
from tradeflow.ledger.errors import (
    AccountCodeTaken,
    AccountNotFound,
    CurrencyRequired,
    EntryAlreadyReversed,
    EntryNotFound,
    InvalidEntry,
    PostingDeferred,
    UnbalancedEntry,
)
from tradeflow.ledger.events import LedgerEntryPosted, PostedLine
from tradeflow.ledger.models import Account, Entry, Line
from tradeflow.ledger.repository import EntryFilters, LedgerRepository, NewLine
from tradeflow.ledger.schemas import (
    NORMAL_BALANCE,
    AccountIn,
    AccountOut,
    AccountType,
    BooksCheck,
    CustomerBalance,
    CustomerCurrencyBalance,
    EntryKind,
    EntryOut,
    LineOut,
    ManualEntryIn,
    PostingResult,
    Side,
    Statement,
    StatementLine,
    TrialBalance,
    TrialBalanceRow,
    TrialBalanceTotal,
    signed_balance,
)

EVENT_POSTER = "ledger:events"

__all__ = [
    "EntryFilters",
    "account_statement",
    "create_account",
    "customer_balance",
    "ensure_chart",
    "find_entry_by_source",
    "get_account",
    "get_entry",
    "list_accounts",
    "list_entries",
    "post_event",
    "post_manual_entry",
    "reverse_entry",
    "trial_balance",
    "verify_books",
]


# -- the chart ---------------------------------------------------------------------------------


async def ensure_chart(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """The ids of the tenant's system accounts, seeding the default chart on first use."""
    repo = LedgerRepository(session, tenant_id)
    accounts = await repo.system_accounts()
    if accounts.keys() >= chart.DEFAULT_KEYS:
        return accounts
    await repo.seed_accounts(a for a in chart.DEFAULT_CHART if a.key not in accounts)
    accounts = await repo.system_accounts()
    missing = chart.DEFAULT_KEYS - accounts.keys()
    if missing:  # only if an account took a default code before the chart was seeded
        raise RuntimeError(f"ledger chart of tenant {tenant_id} lacks {sorted(missing)}")
    return accounts


async def list_accounts(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    page: PageRequest,
    type: AccountType | None = None,
) -> Page[AccountOut]:
    await ensure_chart(session, tenant_id=tenant_id)
    rows, next_cursor = await LedgerRepository(session, tenant_id).list_accounts(
        page, type=type.value if type else None
    )
    return Page(items=[AccountOut.model_validate(a) for a in rows], next_cursor=next_cursor)


async def get_account(
    session: AsyncSession, *, tenant_id: uuid.UUID, account_id: uuid.UUID
) -> AccountOut:
    account = await LedgerRepository(session, tenant_id).account(account_id)
    if account is None:
        raise AccountNotFound(f"No ledger account {account_id}.")
    return AccountOut.model_validate(account)


async def create_account(
    session: AsyncSession, *, tenant_id: uuid.UUID, body: AccountIn
) -> AccountOut:
    # Seed first, so a custom account can never take a code the defaults need.
    await ensure_chart(session, tenant_id=tenant_id)
    normal = body.normal_balance or NORMAL_BALANCE[body.type]
    account = await LedgerRepository(session, tenant_id).add_account(
        code=body.code,
        name=body.name,
        type=body.type.value,
        normal_balance=normal.value,
        description=body.description,
    )
    if account is None:
        raise AccountCodeTaken(f"The chart already has an account with code {body.code!r}.")
    return AccountOut.model_validate(account)


# -- posting -----------------------------------------------------------------------------------


async def post_event(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    occurred_at: datetime,
) -> PostingResult:
    """Book one business event, exactly once: a second call for the same event id returns
    the entry the first one wrote (also when both run at the same time).

    Raises `PostingDeferred` when a fact the posting needs has not reached the ledger yet,
    and `InvalidEventPayload` when the payload cannot be booked; the event worker retries
    the first and dead-letters the second once its budget is spent.
    """
    repo = LedgerRepository(session, tenant_id)
    # No "already booked?" read first: duplicates are rare (the engine consumes each event
    # once), and the insert below detects them anyway, one round trip cheaper.
    draft = await _draft(repo, event_type, payload)
    if draft is None:
        return PostingResult(entry_id=None, created=False, skipped_reason="nothing to book")
    accounts = await ensure_chart(session, tenant_id=tenant_id)
    codes = {a.key: a.code for a in chart.DEFAULT_CHART}
    lines = [
        _Line(
            account_id=accounts[d.account],
            account_code=codes[d.account],
            debit_minor=d.debit_minor,
            credit_minor=d.credit_minor,
            customer_id=d.customer_id,
            memo=d.memo,
        )
        for d in draft.lines
    ]
    entry_id = await _write(
        session,
        repo,
        kind=EntryKind.EVENT,
        currency=draft.currency,
        description=draft.description,
        occurred_at=occurred_at,
        refs=draft.refs,
        posted_by=EVENT_POSTER,
        lines=lines,
        source_event_id=event_id,
        source_event_type=event_type,
    )
    if entry_id is None:  # another transaction booked this event first
        winner = await repo.entry_by_source(event_id)
        assert winner is not None
        return PostingResult(entry_id=winner.id, created=False)
    return PostingResult(entry_id=entry_id, created=True)


async def _draft(
    repo: LedgerRepository, event_type: str, payload: dict[str, Any]
) -> rules.Draft | None:
    if event_type == "invoice.issued":
        return rules.invoice_issued(rules.parse(rules.InvoiceFacts, payload))
    if event_type == "payment.captured":
        payment = rules.parse(rules.PaymentFacts, payload)
        customer = await _customer(repo, payment.customer_id, payment.invoice_id)
        if customer is None and payment.invoice_id is not None:
            # The invoice's own entry tells whose receivable this pays; events of different
            # aggregates may arrive in any order, so wait for it (the worker retries).
            raise PostingDeferred(
                f"invoice {payment.invoice_id} of payment {payment.payment_id} is not booked yet"
            )
        return rules.payment_captured(payment, customer_id=customer)
    if event_type == "invoice.voided":
        invoice = rules.parse(rules.InvoiceFacts, payload)
        booked = await repo.invoice_postings(invoice.invoice_id)
        if invoice.total_minor and ("invoice.issued", chart.RECEIVABLES) not in booked:
            # Voided before its issue was booked (the worker retries until it is).
            raise PostingDeferred(f"invoice {invoice.invoice_id} is not booked yet")
        return rules.invoice_voided(invoice)
    if event_type == "refund.succeeded":
        refund = rules.parse(rules.RefundFacts, payload)
        customer = await _customer(repo, refund.customer_id, refund.invoice_id)
        tax = 0
        if refund.invoice_id is not None and refund.amount_minor:
            booked = await repo.invoice_postings(refund.invoice_id)
            if ("invoice.issued", chart.RECEIVABLES) not in booked:
                # Its tax share comes from the invoice's own entry: wait for it, as
                # payments do. Not merely for any posting of the invoice — its payment's
                # capture (another aggregate, delivered independently) can be booked first.
                raise PostingDeferred(
                    f"invoice {refund.invoice_id} of refund {refund.refund_id} is not booked yet"
                )
            tax = rules.refund_tax(refund.amount_minor, _invoice_tax(booked))
        return rules.refund_succeeded(refund, customer_id=customer, tax_minor=tax)
    raise ValueError(f"the ledger has no posting rule for {event_type!r}")


def _invoice_tax(booked: dict[tuple[str, str], int]) -> rules.InvoiceTax | None:
    """The invoice's booked total and tax, and what earlier refunds of it took back."""
    total = booked.get(("invoice.issued", chart.RECEIVABLES), 0)
    if total <= 0:
        return None  # not booked (or booked from elsewhere): no tax to split out
    refund_tax = booked.get(("refund.succeeded", chart.TAX_PAYABLE), 0)
    return rules.InvoiceTax(
        total_minor=total,
        tax_minor=-booked.get(("invoice.issued", chart.TAX_PAYABLE), 0),
        refunded_minor=booked.get(("refund.succeeded", chart.REFUNDS), 0) + refund_tax,
        tax_refunded_minor=refund_tax,
    )


async def _customer(
    repo: LedgerRepository, given: uuid.UUID | None, invoice_id: uuid.UUID | None
) -> uuid.UUID | None:
    if given is not None:
        return given
    if invoice_id is None:
        return None
    return await repo.customer_of_invoice(invoice_id)


@dataclass(frozen=True, slots=True)
class _Line:
    account_id: uuid.UUID
    account_code: str
    debit_minor: int
    credit_minor: int
    customer_id: uuid.UUID | None
    memo: str | None


def _check_balanced(lines: Sequence[_Line]) -> int:
    """The entry's total; raises before the database would refuse it at commit."""
    debits = sum(line.debit_minor for line in lines)
    credits = sum(line.credit_minor for line in lines)
    if len(lines) < 2 or debits != credits:
        raise UnbalancedEntry(
            f"Debits {debits} and credits {credits} over {len(lines)} line(s): an entry needs "
            "two or more lines whose debits equal their credits.",
            debit_minor=debits,
            credit_minor=credits,
        )
    for n, line in enumerate(lines):
        if (
            line.debit_minor < 0
            or line.credit_minor < 0
            or ((line.debit_minor > 0) == (line.credit_minor > 0))
        ):
            raise InvalidEntry(
                [{"field": f"lines.{n}", "message": "one side positive, the other zero"}]
            )
    return debits


async def _write(
    session: AsyncSession,
    repo: LedgerRepository,
    *,
    kind: EntryKind,
    currency: str,
    description: str,
    occurred_at: datetime,
    refs: dict[str, str],
    posted_by: str | None,
    lines: Sequence[_Line],
    source_event_id: uuid.UUID | None = None,
    source_event_type: str | None = None,
    reverses_entry_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Write entry, lines and the `ledger.entry_posted` event; None if the key was taken."""
    total = _check_balanced(lines)
    entry_id = uuid7()
    posted_at = await repo.insert_entry(
        entry_id=entry_id,
        kind=kind.value,
        currency=currency,
        description=description,
        occurred_at=occurred_at,
        refs=refs,
        posted_by=posted_by,
        source_event_id=source_event_id,
        source_event_type=source_event_type,
        reverses_entry_id=reverses_entry_id,
    )
    if posted_at is None:
        return None
    await repo.insert_lines(
        entry_id=entry_id,
        currency=currency,
        posted_at=posted_at,
        lines=[
            NewLine(
                account_id=line.account_id,
                debit_minor=line.debit_minor,
                credit_minor=line.credit_minor,
                customer_id=line.customer_id,
                memo=line.memo,
            )
            for line in lines
        ],
    )
    await publish(
        session,
        LedgerEntryPosted(
            entry_id=entry_id,
            kind=kind.value,
            currency=currency,
            description=description,
            source_event_id=source_event_id,
            source_event_type=source_event_type,
            reverses_entry_id=reverses_entry_id,
            refs=refs,
            occurred_at=occurred_at,
            posted_at=posted_at,
            total_minor=total,
            lines=[
                PostedLine(
                    line_no=n,
                    account_id=line.account_id,
                    account_code=line.account_code,
                    debit_minor=line.debit_minor,
                    credit_minor=line.credit_minor,
                    customer_id=line.customer_id,
                    memo=line.memo,
                )
                for n, line in enumerate(lines, start=1)
            ],
        ),
        tenant_id=repo.tenant_id,
        aggregate_id=entry_id,
    )
    return entry_id


async def post_manual_entry(
    session: AsyncSession, *, tenant_id: uuid.UUID, body: ManualEntryIn, posted_by: str | None
) -> EntryOut:
    """A hand-written entry (adjustments, opening balances) on any accounts of the chart."""
    await ensure_chart(session, tenant_id=tenant_id)
    repo = LedgerRepository(session, tenant_id)
    by_id = await repo.accounts_by_ids(x.account_id for x in body.lines if x.account_id)
    by_code = await repo.accounts_by_codes(x.account_code for x in body.lines if x.account_code)
    errors: list[dict[str, str]] = []
    lines: list[_Line] = []
    for n, given in enumerate(body.lines):
        account: Account | None
        if given.account_id is not None:
            account = by_id.get(given.account_id)
            field = f"lines.{n}.account_id"
        else:
            account = by_code.get(given.account_code or "")
            field = f"lines.{n}.account_code"
        if account is None:
            errors.append({"field": field, "message": "no such account in the chart"})
            continue
        lines.append(
            _Line(
                account_id=account.id,
                account_code=account.code,
                debit_minor=given.debit_minor,
                credit_minor=given.credit_minor,
                customer_id=given.customer_id,
                memo=given.memo,
            )
        )
    if errors:
        raise InvalidEntry(errors)
    entry_id = await _write(
        session,
        repo,
        kind=EntryKind.MANUAL,
        currency=body.currency,
        description=body.description,
        occurred_at=body.occurred_at or utcnow(),
        refs={},
        posted_by=posted_by,
        lines=lines,
    )
    assert entry_id is not None  # a manual entry has no key to collide on
    return await get_entry(session, tenant_id=tenant_id, entry_id=entry_id)


async def reverse_entry(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    entry_id: uuid.UUID,
    description: str | None = None,
    posted_by: str | None,
) -> EntryOut:
    """Post the mirror image of an entry (debits become credits); an entry is reversed once."""
    repo = LedgerRepository(session, tenant_id)
    original = await repo.entry(entry_id)
    if original is None:
        raise EntryNotFound(f"No journal entry {entry_id}.")
    await _refuse_second_reversal(repo, entry_id)
    lines = [
        _Line(
            account_id=line.account_id,
            account_code=code,
            debit_minor=line.credit_minor,
            credit_minor=line.debit_minor,
            customer_id=line.customer_id,
            memo=line.memo,
        )
        for line, code in await repo.lines_of([entry_id])
    ]
    reversal_id = await _write(
        session,
        repo,
        kind=EntryKind.REVERSAL,
        currency=original.currency,
        description=description or f"Reversal of {original.description}"[:500],
        occurred_at=utcnow(),
        refs=dict(original.refs),
        posted_by=posted_by,
        lines=lines,
        reverses_entry_id=entry_id,
    )
    if reversal_id is None:  # a concurrent reversal won
        await _refuse_second_reversal(repo, entry_id)
        raise EntryAlreadyReversed(f"Journal entry {entry_id} is already reversed.")
    return await get_entry(session, tenant_id=tenant_id, entry_id=reversal_id)


async def _refuse_second_reversal(repo: LedgerRepository, entry_id: uuid.UUID) -> None:
    by = (await repo.reversals_of([entry_id])).get(entry_id)
    if by is not None:
        raise EntryAlreadyReversed(
            f"Journal entry {entry_id} is already reversed by {by}.", reversed_by_entry_id=str(by)
        )


# -- reading -----------------------------------------------------------------------------------


async def _views(repo: LedgerRepository, entries: Sequence[Entry]) -> list[EntryOut]:
    ids = [e.id for e in entries]
    lines: dict[uuid.UUID, list[tuple[Line, str]]] = {i: [] for i in ids}
    for line, code in await repo.lines_of(ids):
        lines[line.entry_id].append((line, code))
    reversed_by = await repo.reversals_of(ids)
    return [
        EntryOut(
            id=e.id,
            kind=EntryKind(e.kind),
            currency=e.currency,
            description=e.description,
            source_event_id=e.source_event_id,
            source_event_type=e.source_event_type,
            reverses_entry_id=e.reverses_entry_id,
            reversed_by_entry_id=reversed_by.get(e.id),
            refs={str(k): str(v) for k, v in e.refs.items()},
            occurred_at=e.occurred_at,
            posted_at=e.posted_at,
            posted_by=e.posted_by,
            total_minor=sum(line.debit_minor for line, _ in lines[e.id]),
            lines=[
                LineOut(
                    id=line.id,
                    line_no=line.line_no,
                    account_id=line.account_id,
                    account_code=code,
                    debit_minor=line.debit_minor,
                    credit_minor=line.credit_minor,
                    customer_id=line.customer_id,
                    memo=line.memo,
                )
                for line, code in lines[e.id]
            ],
        )
        for e in entries
    ]


async def get_entry(
    session: AsyncSession, *, tenant_id: uuid.UUID, entry_id: uuid.UUID
) -> EntryOut:
    repo = LedgerRepository(session, tenant_id)
    entry = await repo.entry(entry_id)
    if entry is None:
        raise EntryNotFound(f"No journal entry {entry_id}.")
    return (await _views(repo, [entry]))[0]


async def find_entry_by_source(
    session: AsyncSession, *, tenant_id: uuid.UUID, source_event_id: uuid.UUID
) -> EntryOut | None:
    """The entry that booked an event, if any (reconciliation asks this)."""
    repo = LedgerRepository(session, tenant_id)
    entry = await repo.entry_by_source(source_event_id)
    return None if entry is None else (await _views(repo, [entry]))[0]


async def list_entries(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: EntryFilters, page: PageRequest
) -> Page[EntryOut]:
    """Entries newest first, with their lines."""
    repo = LedgerRepository(session, tenant_id)
    rows, next_cursor = await repo.list_entries(filters, page)
    return Page(items=await _views(repo, rows), next_cursor=next_cursor)


async def trial_balance(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    as_of: datetime | None = None,
    currency: str | None = None,
) -> TrialBalance:
    """Debit and credit totals per account and currency, posted up to `as_of` (inclusive)."""
    repo = LedgerRepository(session, tenant_id)
    rows = await repo.balances(as_of=as_of, currency=currency)
    accounts = await repo.accounts_by_ids(r.account_id for r in rows)
    out: list[TrialBalanceRow] = []
    totals: dict[str, list[int]] = {}
    for r in rows:
        a = accounts[r.account_id]
        out.append(
            TrialBalanceRow(
                account_id=a.id,
                code=a.code,
                name=a.name,
                type=AccountType(a.type),
                normal_balance=Side(a.normal_balance),
                currency=r.currency,
                debit_minor=r.debit_minor,
                credit_minor=r.credit_minor,
                balance_minor=signed_balance(a.normal_balance, r.debit_minor, r.credit_minor),
            )
        )
        t = totals.setdefault(r.currency, [0, 0])
        t[0] += r.debit_minor
        t[1] += r.credit_minor
    out.sort(key=lambda row: (row.currency, row.code))
    total_rows = [
        TrialBalanceTotal(currency=c, debit_minor=d, credit_minor=cr, balanced=d == cr)
        for c, (d, cr) in sorted(totals.items())
    ]
    return TrialBalance(
        as_of=as_of,
        generated_at=utcnow(),
        accounts=out,
        totals=total_rows,
        balanced=all(t.balanced for t in total_rows),
    )


async def account_statement(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    account_id: uuid.UUID,
    page: PageRequest,
    currency: str | None = None,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
) -> Statement:
    """The account's lines oldest first, each with the running balance after it."""
    repo = LedgerRepository(session, tenant_id)
    account = await repo.account(account_id)
    if account is None:
        raise AccountNotFound(f"No ledger account {account_id}.")
    if currency is None:
        seen = await repo.account_currencies(account_id)
        if len(seen) > 1:
            raise CurrencyRequired(
                f"Account {account.code} holds several currencies; pass `currency`."
            )
        currency = seen[0] if seen else "XXX"  # ISO 4217's "no currency": an empty account
    rows, after, next_cursor = await repo.statement_page(
        account_id=account_id,
        currency=currency,
        page=page,
        posted_from=posted_from,
        posted_to=posted_to,
    )
    debit, credit = await repo.sum_before(
        account_id=account_id, currency=currency, before=posted_from, through=after
    )
    opening = balance = signed_balance(account.normal_balance, debit, credit)
    items = []
    for r in rows:
        balance += signed_balance(account.normal_balance, r.debit_minor, r.credit_minor)
        items.append(
            StatementLine(
                line_id=r.line_id,
                entry_id=r.entry_id,
                posted_at=r.posted_at,
                description=r.description,
                memo=r.memo,
                customer_id=r.customer_id,
                debit_minor=r.debit_minor,
                credit_minor=r.credit_minor,
                balance_minor=balance,
            )
        )
    return Statement(
        account=AccountOut.model_validate(account),
        currency=currency,
        posted_from=posted_from,
        posted_to=posted_to,
        opening_balance_minor=opening,
        closing_balance_minor=balance,
        items=items,
        next_cursor=next_cursor,
    )


async def customer_balance(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    as_of: datetime | None = None,
) -> CustomerBalance:
    """What the customer owes: receivables lines carrying its id, per currency."""
    accounts = await ensure_chart(session, tenant_id=tenant_id)
    repo = LedgerRepository(session, tenant_id)
    rows = await repo.customer_balances(
        customer_id=customer_id, account_ids=[accounts[chart.RECEIVABLES]], as_of=as_of
    )
    per_currency: dict[str, list[int]] = {}
    for r in rows:
        t = per_currency.setdefault(r.currency, [0, 0])
        t[0] += r.debit_minor
        t[1] += r.credit_minor
    return CustomerBalance(
        customer_id=customer_id,
        as_of=as_of,
        balances=[
            CustomerCurrencyBalance(
                currency=c, debit_minor=d, credit_minor=cr, balance_minor=d - cr
            )
            for c, (d, cr) in sorted(per_currency.items())
        ],
    )


async def verify_books(session: AsyncSession, *, tenant_id: uuid.UUID) -> BooksCheck:
    """Re-add every entry and the trial balance from the lines: what an auditor (or the
    `tradeflow ledger verify` command) runs to confirm the database's rules held."""
    repo = LedgerRepository(session, tenant_id)
    entries, lines = await repo.book_counts()
    return BooksCheck(
        entries=entries,
        lines=lines,
        unbalanced_entry_ids=await repo.unbalanced_entries(limit=100),
        trial_balance=await trial_balance(session, tenant_id=tenant_id),
    )
