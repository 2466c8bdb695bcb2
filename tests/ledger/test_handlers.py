"""Booking through the events engine: the real payload models, the worker, once per event."""

from __future__ import annotations

import uuid
from datetime import date

from events.support import FAST, eventually, running_worker
from ledger.support import make_tenant, rows
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events import publish
from tradeflow.kit.keyring import Keyring
from tradeflow.ledger import service
from tradeflow.ledger.handlers import HANDLER_NAME
from tradeflow.orders.events import InvoiceIssued
from tradeflow.payments.events import PaymentCaptured, RefundSucceeded


async def test_invoice_payment_and_refund_are_booked_once(
    committed: Database, settings: Settings, keyring: Keyring
) -> None:
    tenant = await make_tenant(committed)
    customer, invoice, order, payment = (uuid.uuid4() for _ in range(4))
    facts = {"payment_id": payment, "invoice_id": invoice, "order_id": order}
    common = {**facts, "customer_id": customer, "processor": "sandbox", "currency": "EUR"}
    async with committed.tenant_session(tenant) as s:
        issued = await publish(
            s,
            InvoiceIssued(
                invoice_id=invoice,
                number="INV-2025-000042",
                order_id=order,
                customer_id=customer,
                currency="EUR",
                subtotal_minor=10_000,
                tax_minor=2_100,
                total_minor=12_100,
                due_date=date(2025, 8, 1),
            ),
            tenant_id=tenant,
            aggregate_id=invoice,
        )
        captured = await publish(
            s,
            PaymentCaptured(**common, amount_minor=12_100, amount_captured_total_minor=12_100),
            tenant_id=tenant,
            aggregate_id=payment,
        )
        refunded = await publish(
            s,
            RefundSucceeded(
                **common,
                refund_id=uuid.uuid4(),
                amount_minor=2_100,
                amount_refunded_total_minor=2_100,
            ),
            tenant_id=tenant,
            aggregate_id=payment,
        )
        await s.commit()
    booked = {issued.id, captured.id, refunded.id}

    async def ledger_deliveries_done() -> bool:
        found = await rows(
            committed,
            "SELECT d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE s.name = :h AND d.tenant_id = :t",
            h=HANDLER_NAME,
            t=tenant,
        )
        return len(found) == 3 and all(r.status != "pending" for r in found)

    async with running_worker(settings, committed, keyring, **FAST):
        await eventually(ledger_deliveries_done)
    statuses = await rows(
        committed,
        "SELECT d.status, d.last_error FROM deliveries d "
        "JOIN subscribers s ON s.id = d.subscriber_id WHERE s.name = :h AND d.tenant_id = :t",
        h=HANDLER_NAME,
        t=tenant,
    )
    assert {r.status for r in statuses} == {"delivered"}, statuses

    entries = await rows(
        committed,
        "SELECT source_event_id, source_event_type FROM ledger_entries WHERE tenant_id = :t",
        t=tenant,
    )
    assert {r.source_event_id for r in entries} == booked
    posted = await rows(
        committed,
        "SELECT payload FROM events WHERE tenant_id = :t AND type = 'ledger.entry_posted'",
        t=tenant,
    )
    assert {uuid.UUID(r.payload["source_event_id"]) for r in posted} == booked

    async with committed.tenant_session(tenant) as s:
        # Delivered again by hand (a replay): the source key makes it a no-op.
        again = await service.post_event(
            s,
            tenant_id=tenant,
            event_id=issued.id,
            event_type=issued.type,
            payload=issued.payload,
            occurred_at=issued.occurred_at,
        )
        await s.commit()
        tb = await service.trial_balance(s, tenant_id=tenant)
        owed = await service.customer_balance(s, tenant_id=tenant, customer_id=customer)
    assert not again.created
    assert tb.balanced
    assert {r.code: r.balance_minor for r in tb.accounts} == {
        "1050": 10_000,  # 12,100 captured less 2,100 refunded
        "1100": 0,
        "2100": 2_100 - 364,  # the refund takes back its tax share: 2,100 × 2,100 / 12,100
        "4000": 10_000,
        "4100": 2_100 - 364,
    }
    assert [b.balance_minor for b in owed.balances] == [0]
    count = await rows(
        committed, "SELECT count(*) AS n FROM ledger_entries WHERE tenant_id = :t", t=tenant
    )
    assert count[0].n == 3


async def test_handler_is_registered_for_the_booked_types() -> None:
    from tradeflow.events.registry import HANDLERS

    assert set(HANDLERS[HANDLER_NAME].event_types) == {
        "invoice.issued",
        "invoice.voided",
        "payment.captured",
        "refund.succeeded",
    }
