"""Idempotency-Key semantics against real PostgreSQL, through a probe endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.idempotency import claim, fingerprint, purge_expired
from tradeflow.kit.keyring import Keyring


def probe_app(settings: Settings, db: Database, keyring: Keyring, tenant_id: uuid.UUID) -> FastAPI:
    app = create_app(settings, db, keyring=keyring)

    @app.post("/probe-things", status_code=201)
    async def create_thing(request: Request) -> JSONResponse:
        async with db.tenant_session(tenant_id) as session:
            idem = await claim(
                request, session, tenant_id=tenant_id, caller="key:probe", required=True
            )
            payload: dict[str, Any] = await request.json()
            thing_id = uuid.uuid4()
            await session.execute(
                text("INSERT INTO idem_probe (id, name) VALUES (:id, :name)"),
                {"id": thing_id, "name": payload["name"]},
            )
            if payload.get("slow"):
                await asyncio.sleep(float(payload["slow"]))
            response = await idem.save(
                201,
                {"id": thing_id, "name": payload["name"]},
                location=f"/probe-things/{thing_id}",
                etag='"1"',
            )
            await session.commit()
            return response

    return app


async def _tenant(db: Database) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with db.system_session() as s:
        await s.execute(
            text("INSERT INTO tenants (id, name, slug) VALUES (:id, 'Probe', :slug)"),
            {"id": tenant_id, "slug": f"probe-{tenant_id.hex[:8]}"},
        )
        await s.execute(
            text("CREATE TABLE IF NOT EXISTS idem_probe (id uuid primary key, name text)")
        )
        await s.execute(text("GRANT SELECT, INSERT ON idem_probe TO tradeflow_app"))
        await s.commit()
    return tenant_id


@pytest.fixture
async def probe(
    settings: Settings, committed: Database, keyring: Keyring
) -> AsyncIterator[AsyncClient]:
    tenant_id = await _tenant(committed)
    app = probe_app(settings, committed, keyring, tenant_id)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        yield c
    async with committed.system_session() as s:
        await s.execute(text("DROP TABLE IF EXISTS idem_probe"))
        await s.commit()


async def _count(db: Database) -> int:
    async with db.system_session() as s:
        return int((await s.execute(text("SELECT count(*) FROM idem_probe"))).scalar_one())


def test_fingerprint_ignores_json_key_order_and_spacing() -> None:
    a = fingerprint("POST", "/v1/x", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/x", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/x", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/y", b'{"a": 1, "b": [1, 2]}')


async def test_missing_key_is_400(probe: AsyncClient, committed: Database) -> None:
    r = await probe.post("/probe-things", json={"name": "a"})
    assert r.status_code == 400
    assert r.json()["type"].endswith("/idempotency-key-missing")
    assert await _count(committed) == 0


async def test_replay_returns_stored_response(probe: AsyncClient, committed: Database) -> None:
    first = await probe.post("/probe-things", json={"name": "a"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201
    again = await probe.post(
        "/probe-things", content=b'{ "name" : "a" }', headers={"Idempotency-Key": "k1"}
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"] == '"1"'
    assert again.headers["idempotent-replayed"] == "true"
    assert await _count(committed) == 1


async def test_same_key_other_body_is_422(probe: AsyncClient, committed: Database) -> None:
    await probe.post("/probe-things", json={"name": "a"}, headers={"Idempotency-Key": "k2"})
    r = await probe.post("/probe-things", json={"name": "b"}, headers={"Idempotency-Key": "k2"})
    assert r.status_code == 422
    assert r.json()["type"].endswith("/idempotency-key-reused")
    assert await _count(committed) == 1


async def _await_lock(db: Database) -> None:
    """Wait until a request holds its idempotency lock (it has claimed and is sleeping)."""

    async def in_flight() -> bool:
        async with db.system_session() as s:
            n = (
                await s.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )
            ).scalar_one()
            return int(n) > 0

    for _ in range(1000):  # bounded: at most ~10 s
        if await in_flight():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the first request never took its idempotency lock")


async def test_in_flight_is_409(probe: AsyncClient, committed: Database) -> None:
    slow = asyncio.create_task(
        probe.post(
            "/probe-things", json={"name": "s", "slow": 2}, headers={"Idempotency-Key": "k3"}
        )
    )

    await _await_lock(committed)
    r = await probe.post(
        "/probe-things", json={"name": "s", "slow": 2}, headers={"Idempotency-Key": "k3"}
    )
    assert r.status_code == 409
    assert r.json()["type"].endswith("/idempotency-key-in-flight")
    assert r.headers["retry-after"] == "1"
    assert (await slow).status_code == 201
    assert await _count(committed) == 1


async def test_fifty_parallel_posts_one_key_one_effect(
    probe: AsyncClient, committed: Database
) -> None:
    responses = await asyncio.gather(
        *[
            probe.post("/probe-things", json={"name": "p"}, headers={"Idempotency-Key": "k4"})
            for _ in range(50)
        ]
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}
    assert await _count(committed) == 1
    bodies = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(bodies) == 1


async def test_purge_removes_only_expired(probe: AsyncClient, committed: Database) -> None:
    await probe.post("/probe-things", json={"name": "a"}, headers={"Idempotency-Key": "k5"})
    async with committed.system_session() as s:
        assert await purge_expired(s) == 0
        await s.execute(
            text("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        )
        assert await purge_expired(s) == 1
        await s.commit()


async def test_expired_key_runs_again(probe: AsyncClient, committed: Database) -> None:
    await probe.post("/probe-things", json={"name": "a"}, headers={"Idempotency-Key": "k6"})
    async with committed.system_session() as s:
        await s.execute(
            text("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        )
        await s.commit()
    r = await probe.post("/probe-things", json={"name": "b"}, headers={"Idempotency-Key": "k6"})
    assert r.status_code == 201
    assert "idempotent-replayed" not in r.headers
    assert await _count(committed) == 2


async def test_response_committed_after_the_claim_is_409_then_replayed(
    probe: AsyncClient, committed: Database
) -> None:
    """A stored response that commits between the claim's snapshot and its save (the one
    gap the single claim statement leaves) refuses the save: 409, nothing written, and the
    retry answers from the stored response."""
    slow = asyncio.create_task(
        probe.post(
            "/probe-things", json={"name": "r", "slow": 0.5}, headers={"Idempotency-Key": "k7"}
        )
    )
    await _await_lock(committed)
    async with committed.system_session() as s:
        await s.execute(
            text(
                "INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, method, path, "
                "status, body, location, etag, created_at, expires_at) "
                "SELECT id, 'key:probe', 'k7', 'other', 'POST', '/probe-things', 201, "
                "'{\"id\": \"stored\"}', '/probe-things/stored', NULL, now(), "
                "now() + interval '1 hour' FROM tenants WHERE name = 'Probe'"
            )
        )
        await s.commit()
    r = await slow
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/idempotency-key-in-flight")
    assert await _count(committed) == 0
    again = await probe.post("/probe-things", json={"name": "x"}, headers={"Idempotency-Key": "k7"})
    assert again.status_code == 422  # the stored one was another request (fingerprint differs)
    assert await _count(committed) == 0
