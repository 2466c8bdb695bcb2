"""The sandbox's voids, fees and balance transactions (its books, as a processor lists them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sandbox.support import charge, key
from tradeflow.payments.processors.sandbox import SandboxConfig, SandboxProcessor
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


async def test_void_cancels_an_uncaptured_authorisation_once(
    api: httpx.AsyncClient, control: SandboxControl, account: dict[str, Any]
) -> None:
    auth = (await api.post("/v1/charges", json=charge(capture=False), headers=key())).json()
    headers = key()
    first = await api.post(f"/v1/charges/{auth['id']}/void", json={}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "canceled"
    assert first.json()["version"] == 2
    replay = await api.post(f"/v1/charges/{auth['id']}/void", json={}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    other_key = await api.post(f"/v1/charges/{auth['id']}/void", json={}, headers=key())
    assert other_key.status_code == 200
    assert other_key.json()["version"] == 2  # already void: nothing changed
    capture = await api.post(f"/v1/charges/{auth['id']}/captures", json={}, headers=key())
    assert capture.status_code == 409
    captured = (await api.post("/v1/charges", json=charge(), headers=key())).json()
    refused = await api.post(f"/v1/charges/{captured['id']}/void", json={}, headers=key())
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "charge_not_cancelable"
    assert "charge.canceled" in [w["type"] for w in await control.webhooks(account["id"])]


async def test_balance_transactions_list_captures_refunds_and_fees_in_pages(
    sandbox_proc: SandboxProcess,
    api: httpx.AsyncClient,
    control: SandboxControl,
    account: dict[str, Any],
) -> None:
    assert (account["fee_bps"], account["fee_fixed_minor"]) == (290, 30)
    auth = (
        await api.post("/v1/charges", json=charge(capture=False, reference="pay-1"), headers=key())
    ).json()
    url = f"/v1/charges/{auth['id']}/captures"
    await api.post(url, json={"amount": 500}, headers=key())
    await api.post(url, json={}, headers=key())
    await api.post("/v1/refunds", json={"charge": auth["id"], "amount": 200}, headers=key())
    told = len(await control.webhooks(account["id"]))
    behind = await control.charge_directly(account["id"], amount=777, currency="EUR")
    assert behind["status"] == "captured"
    assert len(await control.webhooks(account["id"])) == told  # nobody was told

    config = SandboxConfig(
        base_url=sandbox_proc.api_url,
        account_id=account["id"],
        api_key=account["api_key"],
        webhook_secret=account["webhook_secret"],
    )
    since = datetime.now(UTC) - timedelta(minutes=5)
    seen = []
    async with SandboxProcessor(config) as processor:
        cursor = None
        while True:
            page = await processor.list_settlements(since=since, cursor=cursor, limit=2)
            assert len(page.items) <= 2
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        later = await processor.list_settlements(since=datetime.now(UTC) + timedelta(minutes=1))
    assert [(s.kind, s.amount_minor, s.fee_minor) for s in seen] == [
        ("capture", 500, 45),
        ("capture", 500, 45),
        ("refund", 200, 0),
        ("capture", 777, 53),  # 22.53 → 23, + 30
    ]
    assert [s.payment_reference for s in seen] == ["pay-1", "pay-1", "pay-1", None]
    assert {s.currency for s in seen} == {"EUR"}
    assert later.items == ()
    listed = await api.get("/v1/balance_transactions", params={"limit": 0})
    assert listed.status_code == 400


async def test_a_refund_behind_tradeflows_back_is_booked_and_announced(
    api: httpx.AsyncClient, control: SandboxControl, account: dict[str, Any]
) -> None:
    captured = (await api.post("/v1/charges", json=charge(), headers=key())).json()
    refund = await control.refund_directly(account["id"], charge=captured["id"], amount=300)
    assert (refund["status"], refund["amount"], refund["reference"]) == ("succeeded", 300, None)
    rest = await control.refund_directly(account["id"], charge=captured["id"])
    assert rest["amount"] == captured["amount"] - 300 == 700
    with_nothing_left = await control._client.post(
        f"/accounts/{account['id']}/refunds", json={"charge": captured["id"]}
    )
    assert with_nothing_left.status_code == 400
    unknown = await control._client.post(
        f"/accounts/{account['id']}/refunds", json={"charge": "ch_nope"}
    )
    assert unknown.status_code == 404
    hooks = [w["type"] for w in await control.webhooks(account["id"])]
    assert hooks.count("refund.succeeded") == 2  # unlike a direct charge, the processor tells
    assert sorted(r["amount"] for r in await control.refunds(account["id"])) == [300, 700]
