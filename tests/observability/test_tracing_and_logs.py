"""Traces for FastAPI, SQLAlchemy and httpx, and JSON log lines that carry their ids."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring
from tradeflow.observability.logging import bind_principal, configure_logging
from tradeflow.observability.tracing import build_exporter, configure_tracing

TENANT = uuid.UUID("01930000-0000-7000-8000-00000000abcd")
PRINCIPAL = uuid.UUID("01930000-0000-7000-8000-00000000beef")


class _Sink(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def remote() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 standing in for a remote system."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _routes(db: Database, remote: str) -> APIRouter:
    router = APIRouter(prefix="/test-only")
    log = structlog.get_logger("test")

    @router.get("/traced/{item}")
    async def traced(item: str, request: Request) -> dict[str, Any]:
        bind_principal(request.state, tenant_id=TENANT, principal_id=PRINCIPAL)
        async with db.system_session() as session:
            one = (await session.execute(text("SELECT 1"))).scalar_one()
        async with httpx.AsyncClient() as client:
            upstream = (await client.get(f"{remote}/upstream")).json()
        log.info("traced_work_done", item=item)
        return {"one": one, "upstream": upstream}

    @router.get("/anonymous")
    async def anonymous() -> dict[str, str]:
        log.info("anonymous_work_done")
        return {"ok": "yes"}

    return router


@pytest.fixture
async def traced_app(
    settings: Settings, database_url: str, keyring: Keyring, remote: str
) -> AsyncIterator[tuple[FastAPI, InMemorySpanExporter]]:
    # A fresh engine, as in a real process: tracing is set up before its first connection.
    db = Database.from_settings(settings, database_url)
    exporter = InMemorySpanExporter()
    app = create_app(settings, db, keyring=keyring)
    app.include_router(_routes(db, remote))
    tracing = configure_tracing(
        settings, app=app, engine=db.engine, exporter=exporter, install_global=False
    )
    assert tracing is not None
    try:
        yield app, exporter
    finally:
        tracing.shutdown()
        await db.dispose()


async def test_request_spans_cover_fastapi_sqlalchemy_and_httpx(
    traced_app: tuple[FastAPI, InMemorySpanExporter], json_log: Any
) -> None:
    app, exporter = traced_app
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/test-only/traced/42", headers={"X-Request-ID": "trace-me-1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"one": 1, "upstream": {"ok": True}}

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(server) == 1, [s.name for s in spans]
    assert server[0].name == "GET /test-only/traced/{item}"
    assert server[0].attributes is not None
    assert server[0].attributes["http.route"] == "/test-only/traced/{item}"
    trace_id = server[0].context.trace_id

    sql = [s for s in spans if s.attributes and s.attributes.get("db.system") == "postgresql"]
    assert any("SELECT 1" in str(s.attributes.get("db.statement")) for s in sql), [
        (s.name, s.attributes) for s in spans
    ]
    outbound = [s for s in spans if s.kind == SpanKind.CLIENT and s.name.startswith("GET")]
    assert len(outbound) == 1, [s.name for s in spans]
    assert {s.context.trace_id for s in [*sql, *outbound]} == {trace_id}

    # Every log line of the request carries the request id, the trace id and the tenant.
    hex_trace = format(trace_id, "032x")
    done = json_log.events("traced_work_done")
    assert len(done) == 1
    assert done[0]["request_id"] == "trace-me-1"
    assert done[0]["trace_id"] == hex_trace
    assert done[0]["tenant_id"] == str(TENANT)
    assert done[0]["principal_id"] == str(PRINCIPAL)
    assert done[0]["item"] == "42"
    access = json_log.events("http_request")
    assert len(access) == 1
    assert access[0] | {"duration_ms": 0} == access[0] | {
        "route": "/test-only/traced/{item}",
        "status": 200,
        "request_id": "trace-me-1",
        "trace_id": hex_trace,
        "tenant_id": str(TENANT),
        "principal_id": str(PRINCIPAL),
        "duration_ms": 0,
    }
    assert access[0]["level"] == "info"
    assert access[0]["timestamp"].endswith("Z")


async def test_health_probes_are_not_traced(
    traced_app: tuple[FastAPI, InMemorySpanExporter],
) -> None:
    app, exporter = traced_app
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/healthz")).status_code == 200
    assert [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER] == []


async def test_logs_without_tracing_or_tenant_have_request_id_only(
    settings: Settings, rolled_back: Database, keyring: Keyring, remote: str, json_log: Any
) -> None:
    app = create_app(settings, rolled_back, keyring=keyring)
    app.include_router(_routes(rolled_back, remote))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        first = await client.get("/test-only/anonymous")
        second = await client.get("/test-only/anonymous")
    lines = json_log.lines()
    assert lines, "nothing was logged"
    work = json_log.events("anonymous_work_done")
    assert [w["request_id"] for w in work] == [
        first.headers["x-request-id"],
        second.headers["x-request-id"],
    ]
    for line in json_log.events("http_request"):
        assert "tenant_id" not in line
        assert "trace_id" not in line
        assert line["request_id"] in {first.headers["x-request-id"], second.headers["x-request-id"]}


def test_tracing_is_off_by_default_and_exporter_follows_settings(settings: Settings) -> None:
    assert settings.otel_exporter == "none"
    assert configure_tracing(settings) is None
    console = settings.model_copy(update={"otel_exporter": "console"})
    assert isinstance(build_exporter(console), ConsoleSpanExporter)
    otlp = settings.model_copy(
        update={"otel_exporter": "otlp", "otel_endpoint": "http://127.0.0.1:4318/v1/traces"}
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = build_exporter(otlp)
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"


def test_logs_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream swapped out and closed after configuration (a CLI runner's capture) must not
    make later log calls fail."""
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        first = io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging("info", "json")
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        structlog.get_logger("test").info("after_swap", n=1)
        logging.getLogger("test.stdlib").warning("stdlib after swap")
        lines = [json.loads(line) for line in second.getvalue().splitlines()]
        assert [line["event"] for line in lines] == ["after_swap", "stdlib after swap"]
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
