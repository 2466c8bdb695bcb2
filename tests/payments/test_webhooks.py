"""Inbound processor webhooks from the real sandbox to a real Tradeflow server, applied by the
real worker: duplicates handled once, out-of-order delivery converging on the newest state,
bad signatures refused with 401 and stale timestamps with 400."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from standardwebhooks import Webhook

from events.support import FAST, running_worker
from orders.factories import World, make_world
from payments.factories import Merchant, connect_sandbox, invoiced_order, pay
from payments.support import eventually, rows, scalar, serving
from payments.test_payment_api import payment_events
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.payments import inbound
from tradeflow.payments.processors.registry import processor_class
from tradeflow.payments.resolver import resolve_due
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


@dataclass
class Live:
    url: str
    client: AsyncClient
    world: World

    @property
    def hook_url(self) -> str:
        return f"{self.url}/v1/processor-webhooks/sandbox"


@pytest.fixture
async def live(shared_app: Any, committed: Database) -> AsyncIterator[Live]:
    """Tradeflow served over HTTP on 127.0.0.1, so the sandbox can call it back."""
    world = await make_world(committed)
    async with (
        serving(shared_app) as url,
        AsyncClient(base_url=url, timeout=15) as client,
    ):
        yield Live(url, client, world)


async def connect(
    live: Live, sandbox_proc: SandboxProcess, sandbox: SandboxControl, **faults: Any
) -> Merchant:
    merchant = await connect_sandbox(
        live.client, live.world, sandbox_proc, sandbox, webhook_url=live.hook_url, timeout=0.5
    )
    if faults:
        await sandbox.set_faults(merchant.account_id, **faults)
    return merchant


async def stored_webhooks(db: Database, tenant_id: uuid.UUID) -> list[Any]:
    return await rows(
        db,
        "SELECT event_type, deliveries, outcome, processed_at, "
        "(payload->'data'->'object'->>'version')::int AS version "
        "FROM processor_webhooks WHERE tenant_id = :t ORDER BY received_at",
        t=tenant_id,
    )


async def all_processed(db: Database, tenant_id: uuid.UUID, n: int) -> list[Any] | None:
    found = await stored_webhooks(db, tenant_id)
    if len(found) == n and all(r.processed_at is not None for r in found):
        return found
    return None


async def sent(control: SandboxControl, account_id: str, n: int) -> list[dict[str, Any]] | None:
    hooks = await control.webhooks(account_id)
    done = [h for h in hooks if h["status"] in ("delivered", "failed")]
    return hooks if len(done) == n else None


async def invoice_state(live: Live, invoice_id: str) -> tuple[str, int]:
    inv = (await live.client.get(f"/v1/invoices/{invoice_id}", headers=live.world.staff)).json()
    return inv["status"], inv["amount_paid_minor"]


async def test_duplicate_webhooks_are_stored_and_applied_once(
    live: Live,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    committed: Database,
    settings: Settings,
    keyring: Keyring,
) -> None:
    # The charge call times out, so the webhooks (each sent twice) are what tells us.
    merchant = await connect(
        live, sandbox_proc, sandbox, webhooks="duplicate", delay_after_commit_seconds=2
    )
    world = live.world
    order = await invoiced_order(live.client, world)
    async with running_worker(settings, committed, keyring, **FAST):
        r = await pay(live.client, world, order["invoice_id"])
        assert r.status_code == 202, r.text
        payment_id = r.json()["id"]
        hooks = await eventually(lambda: sent(sandbox, merchant.account_id, 1))
        assert hooks[0]["attempts"] == 2  # the same event id, delivered twice
        stored = await eventually(lambda: all_processed(committed, world.tenant_id, 1))
        assert [(s.event_type, s.deliveries, s.outcome) for s in stored] == [
            ("charge.captured", 2, "applied")
        ]
        await eventually(lambda: _is(invoice_state(live, order["invoice_id"]), ("paid", 1200)))
    payment = (await live.client.get(f"/v1/payments/{payment_id}", headers=world.staff)).json()
    assert payment["status"] == "captured"
    assert await payment_events(committed, payment_id) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
    ]
    # The webhook settled the unanswered call: nothing left for the resolver, one charge.
    assert (await resolve_due(committed, keyring)).checked == 0
    assert len(await merchant.charges()) == 1


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_out_of_order_webhooks_end_in_the_newest_state(
    live: Live,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    committed: Database,
    settings: Settings,
    keyring: Keyring,
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox, webhooks="hold")
    world = live.world
    order = await invoiced_order(live.client, world)
    r = await pay(live.client, world, order["invoice_id"], capture_method="manual")
    payment = r.json()
    assert payment["status"] == "requires_capture"
    # Two captures whose answers are lost: only the (held) webhooks will tell.
    await sandbox.set_faults(merchant.account_id, webhooks="hold", delay_after_commit_seconds=2)
    url = f"/v1/payments/{payment['id']}/capture"
    first = await live.client.post(url, json={"amount_minor": 400}, headers=world.staff)
    second = await live.client.post(url, json={"amount_minor": 800}, headers=world.staff)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["amount_capturable_minor"] == 0

    async with running_worker(settings, committed, keyring, **FAST):
        assert await sandbox.flush(merchant.account_id, "reverse") == 3
        stored = await eventually(lambda: all_processed(committed, world.tenant_id, 3))
        await eventually(lambda: _is(invoice_state(live, order["invoice_id"]), ("paid", 1200)))
    # Newest first: version 3 applied, the older snapshots arrived late and changed nothing.
    assert [(s.version, s.outcome) for s in stored] == [(3, "applied"), (2, "stale"), (1, "stale")]
    final = (await live.client.get(url.rsplit("/", 1)[0], headers=world.staff)).json()
    assert final["status"] == "captured"
    assert final["amount_captured_minor"] == 1200
    assert sorted(c["status"] for c in final["captures"]) == ["succeeded", "succeeded"]
    events = await payment_events(committed, payment["id"])
    assert events == [
        ("payment.intent_created", 1200),
        ("payment.authorized", 1200),
        ("payment.captured", 1200),
    ]
    order_now = (await live.client.get(f"/v1/orders/{order['id']}", headers=world.staff)).json()
    assert order_now["status"] == "paid"
    charge = (await merchant.charges())[0]
    assert [c["amount"] for c in charge["captures"]] == [400, 800]


async def test_badly_signed_webhooks_are_refused_with_401(
    live: Live, sandbox_proc: SandboxProcess, sandbox: SandboxControl, committed: Database
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox, webhook_signature="invalid")
    world = live.world
    order = await invoiced_order(live.client, world)
    assert (await pay(live.client, world, order["invoice_id"])).status_code == 201
    hooks = await eventually(lambda: _attempted(sandbox, merchant.account_id))
    assert {a["status_code"] for a in hooks[0]["attempt_log"]} == {401}
    metrics = (await live.client.get("/metrics")).text
    assert 'tradeflow_processor_webhooks_total{processor="sandbox",result="bad_signature"}' in (
        metrics
    )
    assert await stored_webhooks(committed, world.tenant_id) == []

    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "charge.captured",
            "account": merchant.account_id,
            "data": {"object": {}},
        }
    )
    forged = Webhook("whsec_" + "A" * 32)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "evt_forged",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": forged.sign("evt_forged", now, body),
        "content-type": "application/json",
    }
    r = await live.client.post("/v1/processor-webhooks/sandbox", content=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("webhook-signature-invalid")
    unsigned = await live.client.post(
        "/v1/processor-webhooks/sandbox", content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401
    unknown = await live.client.post("/v1/processor-webhooks/nope", content=body, headers=headers)
    assert unknown.status_code == 404
    assert await stored_webhooks(committed, world.tenant_id) == []


async def _attempted(control: SandboxControl, account_id: str) -> list[dict[str, Any]] | None:
    hooks = await control.webhooks(account_id)
    return hooks if hooks and hooks[0]["attempt_log"] else None


async def test_stale_webhooks_are_refused_with_400_and_fresh_ones_stored_once(
    live: Live, sandbox_proc: SandboxProcess, sandbox: SandboxControl, committed: Database
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox, webhook_timestamp_offset_seconds=-3600)
    world = live.world
    order = await invoiced_order(live.client, world)
    assert (await pay(live.client, world, order["invoice_id"])).status_code == 201
    hooks = await eventually(lambda: _attempted(sandbox, merchant.account_id))
    assert {a["status_code"] for a in hooks[0]["attempt_log"]} == {400}
    assert await stored_webhooks(committed, world.tenant_id) == []

    # The same signed event, re-signed now: accepted (202) once, then a duplicate.
    event = hooks[0]["payload"]
    body = json.dumps(event)
    signer = Webhook(merchant.account["webhook_secret"])

    def signed(at: datetime) -> dict[str, str]:
        return {
            "webhook-id": event["id"],
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer.sign(event["id"], at, body),
            "content-type": "application/json",
        }

    stale = await live.client.post(
        "/v1/processor-webhooks/sandbox",
        content=body,
        headers=signed(datetime.now(UTC) - timedelta(minutes=10)),
    )
    assert stale.status_code == 400
    assert stale.json()["type"].endswith("webhook-timestamp-stale")
    future = await live.client.post(
        "/v1/processor-webhooks/sandbox",
        content=body,
        headers=signed(datetime.now(UTC) + timedelta(minutes=10)),
    )
    assert future.status_code == 400
    first = await live.client.post(
        "/v1/processor-webhooks/sandbox", content=body, headers=signed(datetime.now(UTC))
    )
    assert first.status_code == 202, first.text
    assert first.json() == {"received": True, "duplicate": False}
    again = await live.client.post(
        "/v1/processor-webhooks/sandbox", content=body, headers=signed(datetime.now(UTC))
    )
    assert again.json() == {"received": True, "duplicate": True}
    stored = await stored_webhooks(committed, world.tenant_id)
    assert [(s.event_type, s.deliveries) for s in stored] == [("charge.captured", 2)]
    assert (
        await scalar(
            committed,
            "SELECT count(*) FROM events "
            "WHERE tenant_id = :t AND type = 'processor_event.received'",
            t=world.tenant_id,
        )
        == 1
    )


# -- refunds made at the processor, not through us ------------------------------------------


async def processor_refunds(db: Database, payment_id: str) -> list[Any]:
    return await rows(
        db,
        "SELECT amount_minor, status, processor_refund_id, reason, created_by FROM refunds "
        "WHERE payment_id = :p ORDER BY created_at",
        p=payment_id,
    )


async def refund_ledger_entries(db: Database, payment_id: str) -> int:
    return int(
        await scalar(
            db,
            "SELECT count(*) FROM ledger_entries l JOIN events e ON e.id = l.source_event_id "
            "WHERE e.type = 'refund.succeeded' AND e.aggregate_id = :p",
            p=payment_id,
        )
    )


async def order_status(live: Live, order_id: str) -> str:
    found = (await live.client.get(f"/v1/orders/{order_id}", headers=live.world.staff)).json()
    return str(found["status"])


async def test_a_refund_made_at_the_processor_is_adopted_and_followed(
    live: Live,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    committed: Database,
    settings: Settings,
    keyring: Keyring,
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox)
    world = live.world
    order = await invoiced_order(live.client, world)
    async with running_worker(settings, committed, keyring, **FAST):
        payment = (await pay(live.client, world, order["invoice_id"])).json()
        await eventually(lambda: all_processed(committed, world.tenant_id, 1))
        await eventually(lambda: _is(invoice_state(live, order["invoice_id"]), ("paid", 1200)))
        charge = payment["processor_payment_id"]
        first = await sandbox.refund_directly(merchant.account_id, charge=charge, amount=500)
        stored = await eventually(lambda: all_processed(committed, world.tenant_id, 2))
        assert [(s.event_type, s.outcome) for s in stored][1] == ("refund.succeeded", "adopted")
        await eventually(lambda: _is(refund_ledger_entries(committed, payment["id"]), 1))
        partial = await order_status(live, order["id"])
        await sandbox.refund_directly(merchant.account_id, charge=charge)
        await eventually(lambda: all_processed(committed, world.tenant_id, 3))
        await eventually(lambda: _is(refund_ledger_entries(committed, payment["id"]), 2))
        await eventually(lambda: _is(order_status(live, order["id"]), "refunded"))
    assert partial == "paid"  # a partial refund leaves the order paid
    after = (await live.client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert (after["status"], after["amount_refunded_minor"]) == ("refunded", 1200)
    refunds = await processor_refunds(committed, payment["id"])
    assert [(r.amount_minor, r.status, r.reason, r.created_by) for r in refunds] == [
        (500, "succeeded", "Refunded at the processor", None),
        (700, "succeeded", "Refunded at the processor", None),
    ]
    assert refunds[0].processor_refund_id == first["id"]
    listed = await live.client.get(f"/v1/refunds?payment_id={payment['id']}", headers=world.staff)
    assert sorted(r["amount_minor"] for r in listed.json()["items"]) == [500, 700]
    assert await payment_events(committed, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
        ("refund.succeeded", 500),
        ("refund.succeeded", 700),
    ]


async def test_a_processor_refund_reported_twice_or_before_the_capture_counts_once(
    live: Live,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    committed: Database,
    settings: Settings,
    keyring: Keyring,
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox, webhooks="hold")
    world = live.world
    order = await invoiced_order(live.client, world)
    payment = (await pay(live.client, world, order["invoice_id"])).json()
    assert payment["status"] == "captured"  # from our call's answer; its webhook is held
    refund = await sandbox.refund_directly(
        merchant.account_id, charge=payment["processor_payment_id"], amount=300
    )
    async with running_worker(settings, committed, keyring, **FAST):
        # The refund's webhook first, then the capture's.
        assert await sandbox.flush(merchant.account_id, "reverse") == 2
        await eventually(lambda: all_processed(committed, world.tenant_id, 2))
        # The same refund reported again under a new event id: found by its processor id.
        again = await rows(
            committed,
            "SELECT payload FROM processor_webhooks WHERE tenant_id = :t "
            "AND event_type = 'refund.succeeded'",
            t=world.tenant_id,
        )
        payload = dict(again[0].payload, id=f"evt_again_{uuid.uuid4().hex}")
        async with committed.tenant_session(world.tenant_id) as session:
            event = processor_class("sandbox").parse_event(payload)
            await inbound.store(
                session, tenant_id=world.tenant_id, processor="sandbox", event=event
            )
            await session.commit()
        stored = await eventually(lambda: all_processed(committed, world.tenant_id, 3))
        await eventually(lambda: _is(refund_ledger_entries(committed, payment["id"]), 1))
    assert [(s.event_type, s.outcome) for s in stored] == [
        ("refund.succeeded", "adopted"),
        ("charge.captured", "stale"),
        ("refund.succeeded", "stale"),
    ]
    refunds = await processor_refunds(committed, payment["id"])
    assert [(r.amount_minor, r.processor_refund_id) for r in refunds] == [(300, refund["id"])]
    after = (await live.client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert (after["status"], after["amount_refunded_minor"]) == ("partially_refunded", 300)
    assert await payment_events(committed, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
        ("refund.succeeded", 300),
    ]
    assert await order_status(live, order["id"]) == "paid"


async def test_our_own_refund_reported_before_our_call_answers_is_not_adopted(
    live: Live,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    committed: Database,
    settings: Settings,
    keyring: Keyring,
) -> None:
    merchant = await connect(live, sandbox_proc, sandbox)
    world = live.world
    order = await invoiced_order(live.client, world)
    payment = (await pay(live.client, world, order["invoice_id"])).json()
    await sandbox.set_faults(merchant.account_id, delay_after_commit_seconds=2)
    async with running_worker(settings, committed, keyring, **FAST):
        r = await live.client.post(
            "/v1/refunds",
            json={"payment_id": payment["id"], "amount_minor": 400},
            headers=world.staff,
        )
        assert r.status_code == 202, r.text  # the answer is late; the webhook tells first
        stored = await eventually(lambda: all_processed(committed, world.tenant_id, 2))
        await eventually(lambda: _is(refund_ledger_entries(committed, payment["id"]), 1))
    assert [(s.event_type, s.outcome) for s in stored][1] == ("refund.succeeded", "applied")
    refunds = await processor_refunds(committed, payment["id"])
    assert [(r.amount_minor, r.status, r.reason) for r in refunds] == [(400, "succeeded", None)]
    assert refunds[0].processor_refund_id == (await sandbox.refunds(merchant.account_id))[0]["id"]
    assert (await resolve_due(committed, keyring)).checked == 0  # the webhook settled the call
    assert await payment_events(committed, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
        ("refund.succeeded", 400),
    ]
