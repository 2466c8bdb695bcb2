"""`/v1/connectors`, `/v1/sync-conflicts`, `/v1/reconciliations` through the HTTP API."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parents[1] / "identity"))

from identity_factories import make_api_key, make_tenant

from tradeflow.db import Database
from tradeflow.integrations import runs
from tradeflow.kit.keyring import Keyring

ERP = {"base_url": "http://127.0.0.1:9/api/v1", "auth": "bearer", "token": "very-secret-token"}


async def auth(db: Database, *, scopes: frozenset[str] | None = None) -> tuple[Any, dict[str, str]]:
    tenant = await make_tenant(db)
    kw = {"scopes": scopes} if scopes is not None else {}
    _, token = await make_api_key(db, tenant, **kw)
    return tenant, {"Authorization": f"Bearer {token}"}


async def test_create_shows_secrets_masked_and_stores_them_encrypted(
    client: AsyncClient, rolled_back: Database
) -> None:
    _, headers = await auth(rolled_back)
    r = await client.post(
        "/v1/connectors", json={"kind": "rest_erp", "name": "erp", "config": ERP}, headers=headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/connectors/{body['id']}"
    assert body["config"]["token"] == "********"
    assert body["config"]["base_url"] == ERP["base_url"]
    assert body["status"]["state"] == "healthy"
    assert "push_invoices" in body["capabilities"]
    async with rolled_back.system_session() as s:
        row = (
            await s.execute(
                text(
                    "SELECT config::text, secrets_ciphertext FROM connector_instances WHERE id = :i"
                ),
                {"i": body["id"]},
            )
        ).one()
    assert "very-secret-token" not in row[0]
    assert row[1].startswith("tfe1.")
    assert "very-secret-token" not in row[1]

    # A PATCH that sends the mask back keeps the stored secret.
    r = await client.patch(
        f"/v1/connectors/{body['id']}",
        json={"config": {**ERP, "token": "********", "timeout_seconds": 2}},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"]["timeout_seconds"] == 2
    assert r.json()["config"]["token"] == "********"


async def test_bad_config_names_the_field_and_writes_nothing(
    client: AsyncClient, rolled_back: Database
) -> None:
    _, headers = await auth(rolled_back)
    r = await client.post(
        "/v1/connectors",
        json={"kind": "rest_erp", "name": "erp", "config": {"base_url": "ftp://x", "bogus": 1}},
        headers=headers,
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"config.base_url", "config.bogus"} <= fields
    r = await client.post(
        "/v1/connectors", json={"kind": "nope", "name": "x", "config": {}}, headers=headers
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("unknown-connector-kind")
    assert (await client.get("/v1/connectors", headers=headers)).json()["items"] == []


async def test_pause_resume_replay_and_kinds(client: AsyncClient, rolled_back: Database) -> None:
    _, headers = await auth(rolled_back)
    kinds = (await client.get("/v1/connectors/kinds", headers=headers)).json()
    assert {k["kind"] for k in kinds} >= {"rest_erp", "beancount"}
    assert next(k for k in kinds if k["kind"] == "rest_erp")["secret_fields"] == [
        "token",
        "password",
    ]
    created = (
        await client.post(
            "/v1/connectors",
            json={"kind": "rest_erp", "name": "erp", "config": ERP},
            headers=headers,
        )
    ).json()
    cid = created["id"]
    paused = await client.post(f"/v1/connectors/{cid}/pause", headers=headers)
    assert paused.json()["paused"] is True
    assert paused.json()["status"]["state"] == "paused"
    resumed = await client.post(f"/v1/connectors/{cid}/resume", headers=headers)
    assert resumed.json()["status"]["state"] == "healthy"
    r = await client.post(
        f"/v1/connectors/{cid}/replay", json={"since": "2020-01-01T00:00:00Z"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"redriven": 0, "created": 0}
    r = await client.get(f"/v1/connectors/{cid}/external-ids", headers=headers)
    assert r.json() == {"items": [], "next_cursor": None}


async def test_read_scope_cannot_write(client: AsyncClient, rolled_back: Database) -> None:
    _, headers = await auth(rolled_back, scopes=frozenset({"connectors:read"}))
    assert (await client.get("/v1/connectors", headers=headers)).status_code == 200
    r = await client.post(
        "/v1/connectors", json={"kind": "rest_erp", "name": "erp", "config": ERP}, headers=headers
    )
    assert r.status_code == 403


async def test_a_queued_reconciliation_runs_and_reports_clean_books(
    client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    _tenant, headers = await auth(rolled_back)
    r = await client.post("/v1/reconciliations", headers=headers | {"Idempotency-Key": "rec-1"})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert r.json()["status"] == "queued"
    again = await client.post("/v1/reconciliations", headers=headers | {"Idempotency-Key": "rec-1"})
    assert again.json()["id"] == run_id
    assert await runs.run_queued(rolled_back, keyring) >= 1
    run = (await client.get(f"/v1/reconciliations/{run_id}", headers=headers)).json()
    assert run["status"] == "clean", run
    assert run["mismatch_count"] == 0
    listed = (await client.get("/v1/reconciliations", headers=headers)).json()["items"]
    assert [x["id"] for x in listed] == [run_id]
    r = await client.get(f"/v1/reconciliations/{run_id}/mismatches", headers=headers)
    assert r.json()["items"] == []
    missing = await client.get(f"/v1/reconciliations/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404


async def test_private_targets_are_refused_unless_the_operator_allows_them(
    settings: Any, rolled_back: Database, keyring: Keyring
) -> None:
    from httpx import ASGITransport

    from tradeflow.app import create_app

    strict = create_app(
        settings.model_copy(update={"webhooks_allow_private": False}), rolled_back, keyring=keyring
    )
    _, headers = await auth(rolled_back)
    transport = ASGITransport(app=strict, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver") as client:
        for url in ("http://127.0.0.1:8080/api", "http://10.0.0.5/api", "http://localhost/api"):
            r = await client.post(
                "/v1/connectors",
                json={"kind": "rest_erp", "name": "erp", "config": {**ERP, "base_url": url}},
                headers=headers,
            )
            assert r.status_code == 422, url
            assert r.json()["errors"][0]["field"] == "config.base_url"
        ok = await client.post(
            "/v1/connectors",
            json={
                "kind": "rest_erp",
                "name": "erp",
                "config": {**ERP, "base_url": "https://erp.example.com/api"},
            },
            headers=headers,
        )
        assert ok.status_code == 201, ok.text
