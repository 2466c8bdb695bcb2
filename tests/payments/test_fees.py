"""Processor fees: the sandbox keeps a fee per capture; payments store it and announce it in
`payment.captured`; the ledger books it with the capture."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from orders.factories import World
from payments.factories import Merchant, invoiced_order, pay
from payments.support import rows
from tradeflow.sandbox.balance import capture_fee


def test_capture_fee_is_basis_points_rounded_half_up_plus_fixed() -> None:
    assert capture_fee(500, bps=290, fixed=30) == 45  # 14.5 → 15, + 30
    assert capture_fee(700, bps=290, fixed=30) == 50  # 20.3 → 20, + 30
    assert capture_fee(1200, bps=0, fixed=0) == 0


async def test_fees_per_capture_reach_the_payment_the_event_and_the_ledger(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    order = await invoiced_order(client, world)
    payment = (await pay(client, world, order["invoice_id"], capture_method="manual")).json()
    assert payment["fee_minor"] == 0  # an authorisation costs nothing
    url = f"/v1/payments/{payment['id']}/capture"
    assert (await client.post(url, json={"amount_minor": 500}, headers=world.staff)).json()[
        "fee_minor"
    ] == 45
    captured = (await client.post(url, headers=world.staff)).json()
    assert captured["fee_minor"] == 95
    refund = await client.post(
        "/v1/refunds",
        json={"payment_id": payment["id"], "amount_minor": 200},
        headers={**world.staff, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status_code == 201, refund.text
    after = (await client.get(f"/v1/payments/{payment['id']}", headers=world.staff)).json()
    assert after["fee_minor"] == 95  # refunds return no fee

    charge = (await merchant.charges())[0]
    assert [c["fee"] for c in charge["captures"]] == [45, 50]
    assert charge["amount_fee"] == 95
    events = await rows(
        world.db,
        "SELECT (payload->>'amount_minor')::int, (payload->>'fee_minor')::int FROM events "
        "WHERE type = 'payment.captured' AND aggregate_id = :p ORDER BY sequence",
        p=payment["id"],
    )
    assert [tuple(e) for e in events] == [(500, 45), (700, 50)]


async def test_the_sandbox_fee_is_configurable_per_account(
    client: AsyncClient, world: World, merchant: Merchant
) -> None:
    changed = await merchant.control.set_fees(merchant.account_id, bps=100, fixed_minor=0)
    assert (changed["fee_bps"], changed["fee_fixed_minor"]) == (100, 0)
    order = await invoiced_order(client, world)
    payment = (await pay(client, world, order["invoice_id"])).json()
    assert payment["fee_minor"] == 12  # 1 % of 1200
    unchanged = await merchant.control.set_fees(merchant.account_id)
    assert (unchanged["fee_bps"], unchanged["fee_fixed_minor"]) == (100, 0)
