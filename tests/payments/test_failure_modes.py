"""Processor failure modes against the real sandbox: a timeout after the charge (resolved by
asking, never by charging again), the processor down (clear error, nothing written, retry
works), and a process lost between recording a call and recording its outcome."""

from __future__ import annotations

import uuid
from datetime import timedelta

from httpx import AsyncClient
from prometheus_client import REGISTRY

from orders.factories import World
from payments.factories import (
    authorized_behind_slow_processor,
    connect_sandbox,
    invoiced_order,
    pay,
)
from payments.support import scalar
from payments.test_payment_api import payment_events
from tradeflow.db import Database
from tradeflow.identity.principal import ALL_SCOPES, Principal
from tradeflow.kit.idempotency import Idempotency
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments import service
from tradeflow.payments.resolver import resolve_due
from tradeflow.payments.schemas import PaymentCreate
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


def later(seconds: float = 5) -> object:
    return utcnow() + timedelta(seconds=seconds)


async def test_timeout_after_charge_is_resolved_without_charging_again(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    merchant = await connect_sandbox(client, world, sandbox_proc, sandbox, timeout=0.5)
    await sandbox.set_faults(merchant.account_id, delay_after_commit_seconds=2)
    order = await invoiced_order(client, world)

    r = await pay(client, world, order["invoice_id"], key="slow-pay")
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "processing"
    # The processor did charge, once.
    charges = await merchant.charges()
    assert [(c["reference"], c["amount_captured"]) for c in charges] == [(pending["id"], 1200)]
    # A retry with the key replays the answer; a new request finds nothing left to pay.
    replay = await pay(client, world, order["invoice_id"], key="slow-pay")
    assert replay.status_code == 202
    assert replay.json()["id"] == pending["id"]
    second = await pay(client, world, order["invoice_id"])
    assert second.status_code == 409, second.text

    report = await resolve_due(rolled_back, keyring, now=later())
    assert list(report.outcomes.values()) == ["succeeded"]
    resolved = (await client.get(f"/v1/payments/{pending['id']}", headers=world.staff)).json()
    assert resolved["status"] == "captured"
    assert resolved["amount_captured_minor"] == 1200
    assert await payment_events(world.db, pending["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.captured", 1200),
    ]
    # Nothing is left to resolve, and the sandbox still holds exactly one charge.
    assert (await resolve_due(rolled_back, keyring, now=later(600))).checked == 0
    assert len(await merchant.charges()) == 1


async def test_capture_and_refund_timeouts_are_resolved_too(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    merchant, payment = await authorized_behind_slow_processor(client, world, sandbox_proc, sandbox)

    r = await client.post(
        f"/v1/payments/{payment['id']}/capture", json={"amount_minor": 700}, headers=world.staff
    )
    assert r.status_code == 202, r.text
    assert [c["status"] for c in r.json()["captures"]] == ["unknown"]
    assert r.json()["amount_capturable_minor"] == 500  # the unanswered 700 stays held
    refund_before = await client.post(
        "/v1/refunds", json={"payment_id": payment["id"]}, headers=world.staff
    )
    assert refund_before.status_code == 409  # nothing captured as far as we know yet

    report = await resolve_due(rolled_back, keyring, now=later())
    assert list(report.outcomes.values()) == ["succeeded"]
    captured = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert captured["amount_captured_minor"] == 700
    assert [c["status"] for c in captured["captures"]] == ["succeeded"]

    refund = await client.post(
        "/v1/refunds", json={"payment_id": payment["id"]}, headers=world.staff
    )
    assert refund.status_code == 202, refund.text
    assert refund.json()["status"] == "pending"
    report = await resolve_due(rolled_back, keyring, now=later())
    assert list(report.outcomes.values()) == ["succeeded"]
    done = (await client.get(f"/v1/refunds/{refund.json()['id']}", headers=world.staff)).json()
    assert done["status"] == "succeeded"
    assert await payment_events(world.db, payment["id"]) == [
        ("payment.intent_created", 1200),
        ("payment.authorized", 1200),
        ("payment.captured", 700),
        ("refund.succeeded", 700),
    ]
    sandbox_charge = (await merchant.charges())[0]
    assert len(sandbox_charge["captures"]) == 1
    assert len(await sandbox.refunds(merchant.account_id)) == 1


async def test_processor_down_is_a_clear_error_with_nothing_written_and_retry_works(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
) -> None:
    merchant = await connect_sandbox(client, world, sandbox_proc, sandbox)
    order = await invoiced_order(client, world)
    await sandbox.down()
    unavailable = {"processor": "sandbox", "kind": "authorize", "outcome": "unavailable"}
    before = REGISTRY.get_sample_value("tradeflow_processor_calls_total", unavailable) or 0
    r = await pay(client, world, order["invoice_id"], key="while-down")
    assert r.status_code == 503, r.text
    assert REGISTRY.get_sample_value("tradeflow_processor_calls_total", unavailable) == before + 1
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("processor-unavailable")
    assert "nothing was charged" in r.json()["detail"]
    assert r.headers["retry-after"]
    for table in ("payments", "processor_operations"):
        assert (
            await scalar(
                world.db, f"SELECT count(*) FROM {table} WHERE tenant_id = :t", t=world.tenant_id
            )
            == 0
        ), table
    assert (
        await scalar(
            world.db,
            "SELECT count(*) FROM idempotency_keys WHERE tenant_id = :t AND path = '/v1/payments'",
            t=world.tenant_id,
        )
        == 0
    )
    assert (
        await scalar(
            world.db,
            "SELECT count(*) FROM events WHERE tenant_id = :t AND aggregate_type = 'payment'",
            t=world.tenant_id,
        )
        == 0
    )

    await sandbox.up()
    retried = await pay(client, world, order["invoice_id"], key="while-down")
    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "captured"
    assert len(await merchant.charges()) == 1


async def test_capture_while_down_leaves_the_payment_as_it_was(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
) -> None:
    await connect_sandbox(client, world, sandbox_proc, sandbox)
    order = await invoiced_order(client, world)
    payment = (await pay(client, world, order["invoice_id"], capture_method="manual")).json()
    await sandbox.down()
    r = await client.post(f"/v1/payments/{payment['id']}/capture", headers=world.staff)
    assert r.status_code == 503
    await sandbox.up()
    unchanged = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert unchanged["status"] == "requires_capture"
    assert unchanged["captures"] == []
    r = await client.post(f"/v1/payments/{payment['id']}/capture", headers=world.staff)
    assert r.json()["status"] == "captured"


async def _record_only(
    db: Database, keyring: Keyring, world: World, invoice_id: str
) -> service.Begun:
    """Step 1 of a payment, committed, as a process that then died would leave it."""
    principal = Principal(
        kind="api_key", id=uuid.uuid4(), tenant_id=world.tenant_id, scopes=ALL_SCOPES
    )
    async with db.tenant_session(world.tenant_id) as session:
        idem = Idempotency(
            session, world.tenant_id, "api_key:test", None, "fp", "POST", "/v1/payments"
        )
        begun = await service.begin_payment(
            session,
            keyring,
            principal=principal,
            body=PaymentCreate.model_validate(
                {"invoice_id": invoice_id, "payment_method": "pm_sandbox_ok"}
            ),
            idem=idem,
        )
        await session.commit()
    return begun


async def test_a_call_lost_between_its_transactions_is_resolved(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    merchant = await connect_sandbox(client, world, sandbox_proc, sandbox)
    charged = await _record_only(
        rolled_back, keyring, world, (await invoiced_order(client, world))["invoice_id"]
    )
    await service.call(charged)  # reached the processor; the outcome was never recorded
    never_sent = await _record_only(
        rolled_back, keyring, world, (await invoiced_order(client, world))["invoice_id"]
    )
    # Still in flight as far as anyone can tell: not touched yet.
    assert (await resolve_due(rolled_back, keyring, now=later(10))).checked == 0

    report = await resolve_due(rolled_back, keyring, now=later(180))
    assert report.outcomes == {
        str(charged.operation_id): "succeeded",
        str(never_sent.operation_id): "failed",
    }
    got = (await client.get(f"/v1/payments/{charged.payment_id}", headers=world.staff)).json()
    assert got["status"] == "captured"
    lost = (await client.get(f"/v1/payments/{never_sent.payment_id}", headers=world.staff)).json()
    assert lost["status"] == "failed"
    assert lost["failure_code"] == "not_processed"
    assert await payment_events(world.db, str(never_sent.payment_id)) == [
        ("payment.intent_created", 1200),
        ("payment.failed", 1200),
    ]
    assert [c["reference"] for c in await merchant.charges()] == [str(charged.payment_id)]
