from __future__ import annotations

from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring


async def test_healthz(client: AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_ready_when_migrated(client: AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_readyz_names_missing_migration(client: AsyncClient, rolled_back: Database) -> None:
    async with rolled_back.system_session() as s:
        # Forget one applied head, as if a newer release's migration had not run.
        gone = (await s.execute(text("SELECT min(version_num) FROM alembic_version"))).scalar_one()
        await s.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": gone})
        await s.commit()
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"].endswith("/not-ready")
    assert body["detail"].startswith("migrations not at head (missing ")
    assert gone in body["detail"]
    assert body["checks"]["database"] == "ok"


async def test_request_id_echoed_and_generated(client: AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r2 = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r2.headers["x-request-id"] != "bad id with spaces"
    assert len(r2.headers["x-request-id"]) == 32


async def test_unknown_route_is_problem_404(client: AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/not-found")


async def test_wrong_method_is_problem_405(client: AsyncClient) -> None:
    r = await client.delete("/healthz")
    assert r.status_code == 405
    assert r.json()["detail"] == "DELETE is not allowed on /healthz."


async def test_metrics_histogram_by_route_template(client: AsyncClient) -> None:
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert (
        'tradeflow_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz",status="200"}'
        in r.text
        or (
            'route="/healthz"' in r.text
            and "tradeflow_http_request_duration_seconds_bucket" in r.text
        )
    )
    assert "tradeflow_db_pool_checked_out" in r.text


async def test_readyz_stays_ready_when_a_newer_release_migrated(
    client: AsyncClient, rolled_back: Database
) -> None:
    async with rolled_back.system_session() as s:
        await s.execute(text("INSERT INTO alembic_version VALUES ('zz_9999_from_the_future')"))
        await s.commit()
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert "zz_9999_from_the_future" in r.json()["checks"]["migrations"]


async def test_metrics_label_plain_routes_and_unmatched_paths(client: AsyncClient) -> None:
    await client.get("/openapi.json")
    await client.get("/no/such/path/7f3a")
    text = (await client.get("/metrics")).text
    assert 'route="/openapi.json"' in text
    assert "7f3a" not in text
    assert 'route="unmatched"' in text


async def test_metrics_label_nested_routes_with_their_full_template(
    settings: Settings, rolled_back: Database, keyring: Keyring
) -> None:
    app = create_app(settings, rolled_back, keyring=keyring)
    outer, inner = APIRouter(prefix="/v9"), APIRouter(prefix="/things")

    @inner.get("/{thing_id}/parts/{part}")
    async def part(thing_id: int, part: str) -> dict[str, str]:
        return {"part": part}

    outer.include_router(inner)
    app.include_router(outer)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v9/things/42/parts/things")).status_code == 200
        assert (await c.get("/v1/me")).status_code == 401  # a product route, nested twice
        text = (await c.get("/metrics")).text
    assert 'route="/v9/things/{thing_id}/parts/{part}"' in text
    assert 'route="/v1/me",status="401"' in text
    assert "/42/" not in text
