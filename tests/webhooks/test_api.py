"""The webhook and delivery API contract, through HTTP with an API key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.events.engine import dispatch_batch
from tradeflow.identity import service as identity
from tradeflow.identity.principal import ALL_SCOPES
from tradeflow.identity.repository import IdentityRepository
from tradeflow.kit.keyring import Keyring

URL = "http://127.0.0.1:9/hook"


async def _api_key(db: Database, scopes: frozenset[str] = ALL_SCOPES) -> tuple[uuid.UUID, str]:
    suffix = uuid.uuid4().hex[:8]
    async with db.system_session() as s:
        tenant = await identity.create_tenant(s, name=f"T {suffix}", slug=f"t-{suffix}")
        created = await identity.create_api_key(
            IdentityRepository(s, tenant.id), name="k", scopes=scopes, actor=None
        )
        await s.commit()
    return tenant.id, created.token


@pytest.fixture
async def auth(rolled_back: Database) -> tuple[uuid.UUID, dict[str, str]]:
    tenant, token = await _api_key(rolled_back)
    return tenant, {"Authorization": f"Bearer {token}"}


async def _dispatch(db: Database) -> None:
    async with db.system_session() as s:
        await dispatch_batch(s, limit=1000)
        await s.commit()


async def _create(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/webhook-endpoints", json={"url": URL, **body}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_shows_secret_once_and_encrypts_it(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]], rolled_back: Database
) -> None:
    _, headers = auth
    created = await _create(client, headers, event_types=["webhook.test"], description="ERP")
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["webhook.test"]
    assert created["enabled"] is True
    assert created["breaker_state"] == "closed"
    got = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=headers)
    assert got.status_code == 200
    assert "secret" not in got.json()
    async with rolled_back.system_session() as s:
        stored = (
            await s.execute(
                text("SELECT secret_ciphertext FROM webhook_endpoints WHERE id = :id"),
                {"id": created["id"]},
            )
        ).scalar()
    assert stored.startswith("tfe1.")
    assert created["secret"] not in stored
    listed = await client.get("/v1/webhook-endpoints", headers=headers)
    assert [e["id"] for e in listed.json()["items"]] == [created["id"]]


async def test_idempotent_create_replays_without_secret(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = auth
    h = {**headers, "Idempotency-Key": "ep-1"}
    first = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=h)
    again = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["secret"].startswith("whsec_")
    assert again.json()["secret"] is None


async def test_rejects_unknown_types_and_bad_urls(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = auth
    r = await client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": ["nope.never"]}, headers=headers
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/unknown-event-types")
    r = await client.post("/v1/webhook-endpoints", json={"url": "ftp://x"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/invalid-webhook-url")


async def test_private_targets_refused_unless_allowed(
    settings: Settings, rolled_back: Database, keyring: Keyring
) -> None:
    from tradeflow.app import create_app

    strict = settings.model_copy(update={"webhooks_allow_private": False})
    app = create_app(strict, rolled_back, keyring=keyring)
    _, token = await _api_key(rolled_back)
    headers = {"Authorization": f"Bearer {token}"}
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        for url in (
            "http://127.0.0.1/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/x",
            "http://[::1]/x",
            "http://localhost/x",
        ):
            r = await c.post("/v1/webhook-endpoints", json={"url": url}, headers=headers)
            assert r.status_code == 422, (url, r.text)
        r = await c.post(
            "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"}, headers=headers
        )
        assert r.status_code == 201


async def test_test_send_targets_only_that_endpoint(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]], rolled_back: Database
) -> None:
    _, headers = auth
    a = await _create(client, headers)
    b = await _create(client, headers)
    r = await client.post(f"/v1/webhook-endpoints/{a['id']}/test", headers=headers)
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    await _dispatch(rolled_back)
    listed = await client.get(
        f"/v1/deliveries?endpoint_id={a['id']}&status=pending", headers=headers
    )
    assert [d["event_id"] for d in listed.json()["items"]] == [event_id]
    none = await client.get(f"/v1/deliveries?endpoint_id={b['id']}", headers=headers)
    assert none.json()["items"] == []
    events = await client.get("/v1/events?type=webhook.test", headers=headers)
    assert [e["id"] for e in events.json()["items"]] == [event_id]
    one = await client.get(f"/v1/events/{event_id}", headers=headers)
    assert one.json()["payload"]["endpoint_id"] == a["id"]


async def test_pause_resume_disable_and_rotate(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = auth
    ep = await _create(client, headers)
    base = f"/v1/webhook-endpoints/{ep['id']}"
    assert (await client.post(f"{base}/pause", headers=headers)).json()["paused"] is True
    assert (await client.post(f"{base}/resume", headers=headers)).json()["paused"] is False
    r = await client.patch(base, json={"enabled": False, "event_types": None}, headers=headers)
    assert r.json()["enabled"] is False
    assert r.json()["disabled_reason"] == "manual"
    assert r.json()["event_types"] is None
    assert (await client.post(f"{base}/test", headers=headers)).status_code == 409
    r = await client.patch(base, json={"enabled": True}, headers=headers)
    assert r.json()["enabled"] is True
    rotated = await client.post(
        f"{base}/rotate-secret", json={"overlap_seconds": 600}, headers=headers
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != ep["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None


async def test_redeliver_recover_and_dead_letters(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]], rolled_back: Database
) -> None:
    _, headers = auth
    ep = await _create(client, headers)
    await client.post(f"/v1/webhook-endpoints/{ep['id']}/test", headers=headers)
    await _dispatch(rolled_back)
    [delivery] = (
        await client.get(f"/v1/deliveries?endpoint_id={ep['id']}", headers=headers)
    ).json()["items"]
    async with rolled_back.system_session() as s:
        await s.execute(
            text(
                "UPDATE deliveries SET status = 'dead', attempts = 8, dead_at = now(), "
                "next_attempt_at = now() + interval '1 day' WHERE id = :id"
            ),
            {"id": delivery["id"]},
        )
        await s.commit()
    dead = await client.get("/v1/dead-letters", headers=headers)
    assert [d["id"] for d in dead.json()["items"]] == [delivery["id"]]
    r = await client.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=headers)
    assert r.status_code == 202
    assert r.json()["status"] == "pending"
    assert r.json()["attempts"] == 0
    async with rolled_back.system_session() as s:
        await s.execute(
            text("UPDATE deliveries SET status = 'dead' WHERE id = :id"), {"id": delivery["id"]}
        )
        await s.commit()
    redriven = await client.post(
        "/v1/dead-letters/redrive", json={"endpoint_id": ep["id"]}, headers=headers
    )
    assert redriven.json()["redriven"] == 1
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await client.post(
        f"/v1/webhook-endpoints/{ep['id']}/recover", json={"since": since}, headers=headers
    )
    assert r.status_code == 202
    assert r.json() == {"redriven": 1, "created": 0}
    detail = await client.get(f"/v1/deliveries/{delivery['id']}", headers=headers)
    assert detail.json()["attempt_log"] == []
    missing = await client.post(f"/v1/deliveries/{uuid.uuid4()}/redeliver", headers=headers)
    assert missing.status_code == 404


async def test_recover_creates_deliveries_missed_while_disabled(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]], rolled_back: Database
) -> None:
    tenant, headers = auth
    ep = await _create(client, headers)
    await _create(client, headers)
    base = f"/v1/webhook-endpoints/{ep['id']}"
    await client.patch(base, json={"enabled": False}, headers=headers)
    # An event while `ep` is disabled: it gets no delivery (`other` gets one).
    async with rolled_back.tenant_session(tenant) as s:
        from events.test_outbox import WidgetCreated
        from tradeflow.events import publish

        wid = uuid.uuid4()
        await publish(s, WidgetCreated(widget_id=wid, name="x"), tenant_id=tenant, aggregate_id=wid)
        await s.commit()
    await _dispatch(rolled_back)
    assert (await client.get(f"/v1/deliveries?endpoint_id={ep['id']}", headers=headers)).json()[
        "items"
    ] == []
    await client.patch(base, json={"enabled": True}, headers=headers)
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = await client.post(f"{base}/recover", json={"since": since}, headers=headers)
    assert r.json()["created"] == 1
    listed = (await client.get(f"/v1/deliveries?endpoint_id={ep['id']}", headers=headers)).json()
    assert [d["event_type"] for d in listed["items"]] == ["widget.created"]


async def test_other_tenants_endpoints_are_404(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]], rolled_back: Database
) -> None:
    _, headers = auth
    ep = await _create(client, headers)
    _, other_token = await _api_key(rolled_back)
    other = {"Authorization": f"Bearer {other_token}"}
    for method, path in (("GET", ""), ("POST", "/test"), ("POST", "/pause"), ("DELETE", "")):
        r = await client.request(method, f"/v1/webhook-endpoints/{ep['id']}{path}", headers=other)
        assert r.status_code == 404, (method, path)
    assert (await client.get("/v1/webhook-endpoints", headers=other)).json()["items"] == []


async def test_scopes_are_enforced(client: AsyncClient, rolled_back: Database) -> None:
    _, token = await _api_key(rolled_back, scopes=frozenset({"webhooks:read"}))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/webhook-endpoints", headers=headers)).status_code == 200
    assert (await client.get("/v1/deliveries", headers=headers)).status_code == 200
    r = await client.post("/v1/webhook-endpoints", json={"url": URL}, headers=headers)
    assert r.status_code == 403
    assert (await client.get("/v1/events", headers=headers)).status_code == 403


async def test_policy_jobs_and_catalogue(
    client: AsyncClient, auth: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = auth
    r = await client.get("/v1/delivery-policy", headers=headers)
    assert r.json()["custom"] is False
    assert r.json()["attempts"] == 8
    r = await client.put("/v1/delivery-policy", json={"retry_schedule": [1, 2, 3]}, headers=headers)
    assert r.json() == {"retry_schedule": [1, 2, 3], "custom": True, "attempts": 4, "jitter": 0.2}
    bad = await client.put("/v1/delivery-policy", json={"retry_schedule": [-1]}, headers=headers)
    assert bad.status_code == 422
    types = {t["type"] for t in (await client.get("/v1/event-types", headers=headers)).json()}
    assert {"webhook.test", "delivery.exhausted", "endpoint.disabled"} <= types
    jobs = await client.get("/v1/scheduled-jobs", headers=headers)
    assert jobs.status_code == 200
