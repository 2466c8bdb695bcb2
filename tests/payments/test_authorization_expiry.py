"""Manual authorisations left uncaptured past the window are voided at the processor, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from httpx import AsyncClient

from orders.factories import World
from payments.factories import (
    Merchant,
    authorized_behind_slow_processor,
    invoiced_order,
    pay,
)
from payments.support import eventually, rows
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.registry import load_plugins
from tradeflow.events.scheduler import JOBS, JobContext
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow
from tradeflow.payments.expiry import expire_authorizations
from tradeflow.payments.jobs import void_expired_authorizations
from tradeflow.payments.resolver import resolve_due
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess

WEEK = timedelta(days=7)


async def _events(db: Database, payment_id: str) -> list[tuple[str, str | None]]:
    found = await rows(
        db,
        "SELECT type, payload->>'reason' FROM events WHERE aggregate_type = 'payment' "
        "AND aggregate_id = :p ORDER BY sequence",
        p=payment_id,
    )
    return [(r[0], r[1]) for r in found]


EXPIRY_EVENTS = [
    ("payment.intent_created", None),
    ("payment.authorized", None),
    ("payment.canceled", "authorization_expired"),
]


async def _assert_voided_for_expiry(events_db: Database, db: Database, payment_id: str) -> None:
    """The payment's events end in an expiry cancel, after one authorise and one void."""
    assert await _events(events_db, payment_id) == EXPIRY_EVENTS
    ops = await rows(
        db,
        "SELECT kind, status FROM processor_operations WHERE payment_id = :p ORDER BY id",
        p=payment_id,
    )
    assert [tuple(o) for o in ops] == [("authorize", "succeeded"), ("void", "succeeded")]


def test_the_job_is_registered_with_a_seven_day_default(settings: Settings) -> None:
    load_plugins()
    assert "payments.expire_authorizations" in JOBS
    assert Settings.model_fields["payments_authorization_expiry_seconds"].default == 7 * 86400


async def test_an_authorisation_left_past_a_short_window_is_voided_by_the_job(
    client: AsyncClient,
    world: World,
    merchant: Merchant,
    rolled_back: Database,
    settings: Settings,
) -> None:
    order = await invoiced_order(client, world)
    payment = (await pay(client, world, order["invoice_id"], capture_method="manual")).json()
    assert payment["status"] == "requires_capture"
    short = settings.model_copy(update={"payments_authorization_expiry_seconds": 0.5})
    ctx = JobContext(short, rolled_back, "payments.expire_authorizations", utcnow())

    async def canceled() -> bool:
        await void_expired_authorizations(ctx)
        got = await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)
        return bool(got.json()["status"] == "canceled")

    await eventually(canceled, timeout=15)
    voided = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert voided["failure_code"] == "authorization_expired"
    assert voided["amount_capturable_minor"] == 0
    charge = (await merchant.charges())[0]
    assert charge["status"] == "canceled"
    await _assert_voided_for_expiry(world.db, rolled_back, payment["id"])
    # Once only: nothing left to void; capturing is refused; the invoice can be paid again.
    await void_expired_authorizations(ctx)
    again_ops = await rows(
        rolled_back, "SELECT id FROM processor_operations WHERE payment_id = :p", p=payment["id"]
    )
    assert len(again_ops) == 2
    late = await client.post(f"/v1/payments/{payment['id']}/capture", headers=world.staff)
    assert late.status_code == 409, late.text
    again = await pay(client, world, order["invoice_id"])
    assert again.status_code == 201, again.text


async def test_young_captured_and_in_flight_authorisations_are_left_alone(
    client: AsyncClient,
    world: World,
    merchant: Merchant,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    async def authorised() -> dict[str, Any]:
        order = await invoiced_order(client, world)
        paid: dict[str, Any] = (
            await pay(client, world, order["invoice_id"], capture_method="manual")
        ).json()
        return paid

    young = await authorised()
    part = await authorised()
    r = await client.post(
        f"/v1/payments/{part['id']}/capture", json={"amount_minor": 100}, headers=world.staff
    )
    assert r.json()["status"] == "partially_captured"
    report = await expire_authorizations(rolled_back, keyring, older_than=WEEK)
    mine = {young["id"], part["id"]}
    assert not mine & {str(p) for p in report.voided}  # nothing is a week old
    # A week on: the partially captured one keeps its remainder; the other is voided.
    report = await expire_authorizations(
        rolled_back, keyring, older_than=WEEK, now=utcnow() + WEEK + timedelta(seconds=1)
    )
    # (Membership, not equality: committed rows of tests running in parallel are visible.)
    assert mine & {str(p) for p in report.voided} == {young["id"]}
    statuses = {c["reference"]: c["status"] for c in await merchant.charges()}
    assert statuses == {young["id"]: "canceled", part["id"]: "partially_captured"}


async def test_a_void_that_times_out_is_resolved_by_asking_the_processor(
    client: AsyncClient,
    world: World,
    sandbox_proc: SandboxProcess,
    sandbox: SandboxControl,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    merchant, payment = await authorized_behind_slow_processor(client, world, sandbox_proc, sandbox)
    report = await expire_authorizations(
        rolled_back, keyring, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1)
    )
    assert payment["id"] in {str(p) for p in report.unknown}
    await sandbox.set_faults(merchant.account_id)
    # The processor voided it; we did not hear. The next scan leaves it to the resolver
    # (an operation is open), which asks and applies what the processor holds.
    report = await expire_authorizations(
        rolled_back, keyring, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1)
    )
    assert payment["id"] not in {str(p) for p in report.voided + report.unknown}
    resolved = await resolve_due(rolled_back, keyring, now=utcnow() + timedelta(seconds=5))
    assert "succeeded" in resolved.outcomes.values()
    got = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert (got["status"], got["failure_code"]) == ("canceled", "authorization_expired")
    assert await _events(world.db, payment["id"]) == EXPIRY_EVENTS
    assert [c["status"] for c in await merchant.charges()] == ["canceled"]


async def test_the_processors_webhook_overtaking_our_void_still_names_the_expiry(
    client: AsyncClient,
    world: World,
    merchant: Merchant,
    rolled_back: Database,
    keyring: Keyring,
) -> None:
    import uuid

    from tradeflow.payments import facts
    from tradeflow.payments.configuration import for_payment
    from tradeflow.payments.expiry import _begin, _finish
    from tradeflow.payments.repository import PaymentsRepository

    order = await invoiced_order(client, world)
    payment = (await pay(client, world, order["invoice_id"], capture_method="manual")).json()
    payment_id = uuid.UUID(payment["id"])
    async with rolled_back.tenant_session(world.tenant_id) as s:
        begun = await _begin(s, keyring, world.tenant_id, payment_id)
        assert begun is not None
        await s.commit()
    op_id, charge_id, _ = begun
    async with rolled_back.tenant_session(world.tenant_id) as s:
        loaded = await for_payment(s, keyring, tenant_id=world.tenant_id, name="sandbox")
    async with loaded.build() as processor:
        state = await processor.void(
            charge_id, idempotency_key=facts.operation_key(op_id, "void"), reference=str(op_id)
        )
    assert state.status == "canceled"
    # The processor's webhook is applied before our call's own outcome is recorded.
    async with rolled_back.tenant_session(world.tenant_id) as s:
        repo = PaymentsRepository(s, world.tenant_id)
        row = await repo.payment(payment_id, for_update=True)
        assert row is not None
        await facts.apply_charge(s, repo, row, state)
        await s.commit()
    async with rolled_back.tenant_session(world.tenant_id) as s:
        outcome = await _finish(s, world.tenant_id, payment_id, op_id, state, WEEK)
        await s.commit()
    assert outcome == "voided"
    await _assert_voided_for_expiry(world.db, rolled_back, payment["id"])
