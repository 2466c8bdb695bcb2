"""The sandbox processor behaves like a remote processor: idempotent API, limits, faults,
signed asynchronous webhooks — tested over HTTP against the real child process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from payments.support import Recorder, eventually, serving
from sandbox.support import charge, key
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    async with serving(rec.app()) as url:
        yield rec, f"{url}/hook"


async def test_charge_is_idempotent_per_key(
    api: httpx.AsyncClient, control: SandboxControl, account: dict[str, Any]
) -> None:
    headers = key()
    first = await api.post("/v1/charges", json=charge(reference="p-1"), headers=headers)
    again = await api.post("/v1/charges", json=charge(reference="p-1"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other_body = await api.post("/v1/charges", json=charge(2000, reference="p-1"), headers=headers)
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await control.charges(account["id"])) == 1
    found = await api.get("/v1/charges", params={"reference": "p-1"})
    assert [c["id"] for c in found.json()["data"]] == [first.json()["id"]]


async def test_post_needs_key_and_api_key(
    sandbox_proc: SandboxProcess, api: httpx.AsyncClient
) -> None:
    r = await api.post("/v1/charges", json=charge())
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "idempotency_key_required"
    async with httpx.AsyncClient(base_url=sandbox_proc.api_url) as anonymous:
        r = await anonymous.post("/v1/charges", json=charge(), headers=key())
    assert r.status_code == 401
    r = await api.post("/v1/charges", json={**charge(), "surprise": 1}, headers=key())
    assert r.status_code == 400
    assert r.json()["error"]["fields"][0]["field"] == "surprise"


async def test_partial_captures_then_refunds_within_limits(api: httpx.AsyncClient) -> None:
    created = (await api.post("/v1/charges", json=charge(capture=False), headers=key())).json()
    assert created["status"] == "requires_capture"
    assert created["version"] == 1
    url = f"/v1/charges/{created['id']}/captures"
    part = await api.post(url, json={"amount": 400, "reference": "c-1"}, headers=key())
    assert part.json()["status"] == "partially_captured"
    too_much = await api.post(url, json={"amount": 601}, headers=key())
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    rest = await api.post(url, json={"reference": "c-2"}, headers=key())
    assert rest.json()["status"] == "captured"
    assert rest.json()["amount_captured"] == 1000
    assert [c["reference"] for c in rest.json()["captures"]] == ["c-1", "c-2"]
    assert rest.json()["version"] == 3
    again = await api.post(url, json={"amount": 1}, headers=key())
    assert again.status_code == 409
    refund = await api.post(
        "/v1/refunds",
        json={"charge": created["id"], "amount": 300, "reference": "r-1"},
        headers=key(),
    )
    assert refund.status_code == 201
    assert refund.json()["status"] == "succeeded"
    over = await api.post(
        "/v1/refunds", json={"charge": created["id"], "amount": 701}, headers=key()
    )
    assert over.status_code == 400
    charge_now = (await api.get(f"/v1/charges/{created['id']}")).json()
    assert charge_now["amount_refunded"] == 300


async def test_declines_by_payment_method_and_by_fault(
    api: httpx.AsyncClient, control: SandboxControl, account: dict[str, Any]
) -> None:
    r = await api.post(
        "/v1/charges", json=charge(payment_method="pm_sandbox_insufficient_funds"), headers=key()
    )
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "insufficient_funds"
    assert r.json()["error"]["charge"]["status"] == "failed"
    await control.set_faults(account["id"], decline_code="card_declined")
    r = await api.post("/v1/charges", json=charge(), headers=key())
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "card_declined"
    unknown = await api.post("/v1/charges", json=charge(payment_method="pm_nope"), headers=key())
    assert unknown.status_code == 400


async def test_delay_after_commit_times_the_caller_out_after_charging(
    sandbox_proc: SandboxProcess, control: SandboxControl, account: dict[str, Any]
) -> None:
    await control.set_faults(account["id"], delay_after_commit_seconds=3)
    async with httpx.AsyncClient(
        base_url=sandbox_proc.api_url,
        headers={"authorization": f"Bearer {account['api_key']}"},
        timeout=0.5,
    ) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/v1/charges", json=charge(reference="late"), headers=key())
    charges = await control.charges(account["id"])
    assert [(c["reference"], c["status"]) for c in charges] == [("late", "captured")]


async def test_down_refuses_connections_until_up(
    api: httpx.AsyncClient, control: SandboxControl
) -> None:
    await control.down()
    with pytest.raises(httpx.ConnectError):
        await api.post("/v1/charges", json=charge(), headers=key())
    assert (await control.status())["down"] is True
    await control.up()
    r = await api.post("/v1/charges", json=charge(), headers=key())
    assert r.status_code == 201


async def test_webhooks_are_signed_per_standard_webhooks(
    api: httpx.AsyncClient,
    control: SandboxControl,
    account: dict[str, Any],
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    await control.set_webhook_url(account["id"], url)
    created = (await api.post("/v1/charges", json=charge(capture=False), headers=key())).json()
    await api.post(f"/v1/charges/{created['id']}/captures", json={}, headers=key())
    await eventually(lambda: _count(rec, 2))
    verifier = Webhook(account["webhook_secret"])
    bodies = [verifier.verify(body, headers) for headers, body in rec.requests]
    assert [b["type"] for b in bodies] == ["charge.authorized", "charge.captured"]
    assert [b["data"]["object"]["version"] for b in bodies] == [1, 2]
    assert all(b["account"] == account["id"] for b in bodies)
    assert [h["webhook-id"] for h, _ in rec.requests] == [b["id"] for b in bodies]


async def _count(rec: Recorder, n: int) -> bool:
    return len(rec.requests) >= n


async def test_duplicate_mode_sends_each_event_twice(
    api: httpx.AsyncClient,
    control: SandboxControl,
    account: dict[str, Any],
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    await control.set_webhook_url(account["id"], url)
    await control.set_faults(account["id"], webhooks="duplicate")
    await api.post("/v1/charges", json=charge(), headers=key())
    await eventually(lambda: _count(rec, 2))
    ids = [h["webhook-id"] for h, _ in rec.requests]
    assert len(ids) == 2
    assert ids[0] == ids[1]


async def test_hold_then_flush_in_reverse(
    api: httpx.AsyncClient,
    control: SandboxControl,
    account: dict[str, Any],
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    await control.set_webhook_url(account["id"], url)
    await control.set_faults(account["id"], webhooks="hold")
    created = (await api.post("/v1/charges", json=charge(capture=False), headers=key())).json()
    for amount in (300, 700):
        await api.post(
            f"/v1/charges/{created['id']}/captures", json={"amount": amount}, headers=key()
        )
    held = await control.webhooks(account["id"])
    assert [w["status"] for w in held] == ["held"] * 3
    assert rec.requests == []
    assert await control.flush(account["id"], "reverse") == 3
    await eventually(lambda: _count(rec, 3))
    versions = [json.loads(body)["data"]["object"]["version"] for _, body in rec.requests]
    assert versions == [3, 2, 1]


async def test_failed_deliveries_are_retried_and_logged(
    api: httpx.AsyncClient,
    control: SandboxControl,
    account: dict[str, Any],
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    rec.status = 503
    await control.set_webhook_url(account["id"], url)
    await api.post("/v1/charges", json=charge(), headers=key())
    await eventually(lambda: _count(rec, 2))
    rec.status = 200
    delivered = await eventually(lambda: _delivered(control, account["id"]))
    assert delivered["attempt_log"][0]["status_code"] == 503
    assert delivered["attempt_log"][-1]["status_code"] == 200


async def _delivered(control: SandboxControl, account_id: str) -> dict[str, Any] | None:
    hooks = await control.webhooks(account_id)
    return hooks[0] if hooks and hooks[0]["status"] == "delivered" else None
