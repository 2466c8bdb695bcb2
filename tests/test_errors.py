"""Every error a client can meet is RFC 9457 `application/problem+json` naming what is wrong."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel, Field

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.errors import PROBLEM_CONTENT_TYPE, Conflict
from tradeflow.kit.keyring import Keyring
from tradeflow.observability.logging import configure_logging

SMALL_LIMIT = 2048


class Widget(BaseModel):
    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)


class Boom(RuntimeError):
    pass


def _test_routes() -> APIRouter:
    """Routes mounted only in this test's app, so the product carries no debug endpoints."""
    router = APIRouter(prefix="/test-only")

    @router.post("/widgets")
    async def create_widget(widget: Widget) -> dict[str, Any]:
        return widget.model_dump()

    @router.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    @router.get("/boom")
    async def boom() -> None:
        raise Boom("secret internal detail: password=hunter2")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("the widget changed meanwhile", current_version=3)

    return router


@pytest.fixture
async def error_client(
    settings: Settings, rolled_back: Database, keyring: Keyring
) -> AsyncIterator[AsyncClient]:
    small = settings.model_copy(update={"max_body_bytes": SMALL_LIMIT})
    app: FastAPI = create_app(small, rolled_back, keyring=keyring)
    app.include_router(_test_routes())
    # The app must answer unexpected errors itself; the transport must not see them.
    transport = ASGITransport(app=app, raise_app_exceptions=True)
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def test_validation_error_names_the_field(error_client: AsyncClient) -> None:
    r = await error_client.post("/test-only/widgets", json={"name": "bolt", "quantity": 0})
    body = _problem(r, 422)
    assert body["type"] == "/problems/validation-error"
    assert [e["field"] for e in body["errors"]] == ["quantity"]
    assert "quantity" in body["detail"]


async def test_missing_field_and_bad_path_parameter_are_named(error_client: AsyncClient) -> None:
    body = _problem(await error_client.post("/test-only/widgets", json={"quantity": 2}), 422)
    assert body["errors"][0]["field"] == "name"
    assert body["errors"][0]["location"] == "body"
    body = _problem(await error_client.get("/test-only/widgets/not-a-number"), 422)
    assert body["errors"][0]["field"] == "widget_id"
    assert body["errors"][0]["location"] == "path"


async def test_malformed_json_is_400(error_client: AsyncClient) -> None:
    r = await error_client.post(
        "/test-only/widgets",
        content=b'{"name": "bolt", "quantity": ',
        headers={"content-type": "application/json"},
    )
    body = _problem(r, 400)
    assert body["type"] == "/problems/malformed-json"


async def test_unknown_route_is_404(error_client: AsyncClient) -> None:
    body = _problem(await error_client.get("/v1/no-such-thing"), 404)
    assert body["type"] == "/problems/not-found"
    assert "/v1/no-such-thing" in body["detail"]


async def test_wrong_method_is_405(error_client: AsyncClient) -> None:
    body = _problem(await error_client.put("/test-only/widgets/1"), 405)
    assert body["type"] == "/problems/method-not-allowed"
    assert "PUT" in body["detail"]


async def test_problem_error_subclass_keeps_its_members(error_client: AsyncClient) -> None:
    body = _problem(await error_client.get("/test-only/conflict"), 409)
    assert body["type"] == "/problems/conflict"
    assert body["detail"] == "the widget changed meanwhile"
    assert body["current_version"] == 3


async def test_body_over_limit_by_content_length_is_413(error_client: AsyncClient) -> None:
    payload = json.dumps({"name": "x" * (SMALL_LIMIT + 10), "quantity": 1}).encode()
    r = await error_client.post(
        "/test-only/widgets", content=payload, headers={"content-type": "application/json"}
    )
    body = _problem(r, 413)
    assert body["type"] == "/problems/payload-too-large"
    assert str(SMALL_LIMIT) in body["detail"]


async def test_chunked_body_over_limit_is_413(error_client: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 512
        yield b'", "quantity": 1}'

    r = await error_client.post(
        "/test-only/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    _problem(r, 413)


async def test_chunked_body_under_limit_is_accepted(error_client: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        yield b"z" * 100
        yield b'", "quantity": 1}'

    r = await error_client.post(
        "/test-only/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "z" * 100, "quantity": 1}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The production JSON log configuration, writing into a buffer; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_unexpected_error_is_500_without_internals_and_is_logged(
    error_client: AsyncClient, json_log: io.StringIO
) -> None:
    r = await error_client.get("/test-only/boom", headers={"X-Request-ID": "req-500-test"})
    body = _problem(r, 500)
    assert body["type"] == "/problems/internal-error"
    assert body["request_id"] == "req-500-test"
    assert "hunter2" not in r.text
    assert "Traceback" not in r.text
    assert "Boom" not in r.text
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    errors = [line for line in lines if line["event"] == "unhandled_error"]
    assert len(errors) == 1, lines
    assert errors[0]["request_id"] == "req-500-test"
    assert errors[0]["level"] == "error"
    assert "Traceback" in errors[0]["exception"]
    assert "Boom: secret internal detail" in errors[0]["exception"]
    access = [line for line in lines if line["event"] == "http_request"]
    assert access[-1]["status"] == 500


async def test_missing_credentials_are_401_with_a_challenge(error_client: AsyncClient) -> None:
    r = await error_client.get("/v1/me")
    body = _problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    assert body["type"].startswith("/problems/")
