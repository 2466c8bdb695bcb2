"""Many parallel postings on real commits: the books always balance, no event is booked twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from events.support import eventually
from ledger.support import invoice_payload, make_tenant, payment_payload, post, rows
from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.ledger import service
from tradeflow.ledger.errors import PostingDeferred

INVOICES = 50  # 50 invoices + 50 payments = 100 events, each posted twice: 200 postings
TASKS = 20


async def test_parallel_postings_keep_the_books_balanced(committed: Database) -> None:
    tenant = await make_tenant(committed)
    rng = random.Random(5)
    customers = [uuid.uuid4() for _ in range(5)]
    events: list[tuple[uuid.UUID, str, dict[str, Any]]] = []
    expected_owed: dict[uuid.UUID, int] = dict.fromkeys(customers, 0)
    for n in range(INVOICES):
        customer = customers[n % len(customers)]
        total = rng.randint(100, 100_000)
        tax = total // 5
        paid = rng.randint(1, total)
        invoice = invoice_payload(customer_id=customer, total=total, tax=tax)
        # Payments here do not name the customer: they wait for their invoice's entry.
        payment = payment_payload(
            invoice_id=invoice["invoice_id"], amount=paid, fee=rng.choice([None, 0, paid // 50])
        )
        events.append((uuid7(), "invoice.issued", invoice))
        events.append((uuid7(), "payment.captured", payment))
        expected_owed[customer] += total - paid
    # Each event twice, the copies side by side so two tasks race for the same event;
    # the shuffle puts many payments ahead of their invoices.
    order = [e for e in rng.sample(events, len(events)) for _ in range(2)]
    queue: asyncio.Queue[tuple[tuple[uuid.UUID, str, dict[str, Any]], int]] = asyncio.Queue()
    for item in order:
        queue.put_nowait((item, 0))

    created: list[uuid.UUID] = []
    postings = deferrals = 0
    done = asyncio.Event()

    async def poster() -> None:
        nonlocal postings, deferrals
        while True:
            try:
                (event_id, kind, payload), tries = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                result = await post(committed, tenant, kind, payload, event_id=event_id)
            except PostingDeferred:
                assert tries < 100, "a payment waited for its invoice for too long"
                deferrals += 1
                queue.put_nowait(((event_id, kind, payload), tries + 1))
                await asyncio.sleep(0)
                continue
            postings += 1
            if result.created:
                created.append(event_id)

    checks = 0

    async def auditor() -> None:
        """Reads the trial balance in its own transactions while the postings commit."""
        nonlocal checks
        while not done.is_set():
            async with committed.tenant_session(tenant) as s:
                tb = await service.trial_balance(s, tenant_id=tenant)
            assert tb.balanced, tb.totals
            checks += 1
            await asyncio.sleep(0.01)

    audit = asyncio.create_task(auditor())
    try:
        await asyncio.wait_for(asyncio.gather(*(poster() for _ in range(TASKS))), timeout=120)
    finally:
        done.set()
        await audit

    assert postings == 2 * len(events)
    assert sorted(created) == sorted(e[0] for e in events), "each event created exactly once"
    assert checks > 0
    per_source = await rows(
        committed,
        "SELECT source_event_id, count(*) AS n FROM ledger_entries WHERE tenant_id = :t GROUP BY 1",
        t=tenant,
    )
    assert len(per_source) == len(events)
    assert {r.n for r in per_source} == {1}
    unbalanced = await rows(
        committed,
        "SELECT entry_id FROM ledger_lines WHERE tenant_id = :t GROUP BY entry_id "
        "HAVING sum(debit_minor) <> sum(credit_minor) OR count(*) < 2",
        t=tenant,
    )
    assert unbalanced == []
    async with committed.tenant_session(tenant) as s:
        tb = await service.trial_balance(s, tenant_id=tenant)
        owed = {
            c: sum(
                b.balance_minor
                for b in (
                    await service.customer_balance(s, tenant_id=tenant, customer_id=c)
                ).balances
            )
            for c in customers
        }
        chart = await service.ensure_chart(s, tenant_id=tenant)
    assert tb.balanced
    assert owed == expected_owed
    receivable = next(r for r in tb.accounts if r.account_id == chart["receivables"])
    assert receivable.balance_minor == sum(expected_owed.values())


async def test_a_racing_second_posting_waits_and_finds_the_first(committed: Database) -> None:
    tenant = await make_tenant(committed)
    event_id = uuid7()
    payload = invoice_payload(customer_id=uuid.uuid4(), total=4_200)
    await post(
        committed, tenant, "invoice.issued", invoice_payload(customer_id=uuid.uuid4(), total=1)
    )
    async with committed.tenant_session(tenant) as first:
        mine = await service.post_event(
            first,
            tenant_id=tenant,
            event_id=event_id,
            event_type="invoice.issued",
            payload=payload,
            occurred_at=utcnow(),
        )
        # The second posting sees nothing committed yet and blocks on the unique source key
        # until the first transaction ends.
        second = asyncio.create_task(
            post(committed, tenant, "invoice.issued", payload, event_id=event_id)
        )

        async def second_is_waiting() -> bool:
            found = await rows(
                committed,
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO ledger_entries%'",
            )
            return bool(found)

        await eventually(second_is_waiting)
        await first.commit()
    theirs = await asyncio.wait_for(second, 10)
    assert mine.created
    assert not theirs.created
    assert theirs.entry_id == mine.entry_id
