"""OpenTelemetry tracing for FastAPI, SQLAlchemy and httpx; off unless an exporter is configured.

`TRADEFLOW_OTEL_EXPORTER=console` prints finished spans on stdout (one JSON
document per span); `otlp` sends them over OTLP/HTTP to `TRADEFLOW_OTEL_ENDPOINT`
(or the standard `OTEL_EXPORTER_OTLP_*` variables). Log lines written inside a
span carry its `trace_id` and `span_id` (see `observability.logging`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from tradeflow.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = structlog.get_logger(__name__)

# Health probes and scrapes would drown the real traffic in spans.
EXCLUDED_URLS = "healthz,readyz,metrics"

_global_provider: TracerProvider | None = None


@dataclass
class Tracing:
    """An installed tracer provider and the instrumentations that feed it."""

    provider: TracerProvider
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def shutdown(self) -> None:
        """Remove the instrumentations and flush every pending span."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.provider.force_flush()


def build_exporter(settings: Settings) -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if settings.otel_endpoint:
            return OTLPSpanExporter(endpoint=settings.otel_endpoint)
        return OTLPSpanExporter()
    return ConsoleSpanExporter()


def build_provider(settings: Settings, exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider for `settings`; an explicit `exporter` is exported synchronously (tests)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(build_exporter(settings)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def configure_tracing(
    settings: Settings,
    *,
    app: Any = None,
    engine: Any = None,
    exporter: SpanExporter | None = None,
    install_global: bool = True,
) -> Tracing | None:
    """Trace `app` (FastAPI), `engine` (SQLAlchemy async engine) and every httpx client.

    Returns None when tracing is off. With `install_global` (the processes'
    default) the provider also becomes OpenTelemetry's global one, which can
    happen once per process; later calls reuse it. Tests pass an in-memory
    `exporter` and `install_global=False`, then `shutdown()` to undo.
    """
    global _global_provider
    if settings.otel_exporter == "none" and exporter is None:
        return None
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    if install_global and _global_provider is not None:
        provider = _global_provider
    else:
        provider = build_provider(settings, exporter)
        if install_global:
            trace.set_tracer_provider(provider)
            _global_provider = provider
    tracing = Tracing(provider)

    httpx_instrumentor = HTTPXClientInstrumentor()
    if not httpx_instrumentor.is_instrumented_by_opentelemetry:
        httpx_instrumentor.instrument(tracer_provider=provider)
        tracing._undo.append(httpx_instrumentor.uninstrument)
    if app is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS
        )
        tracing._undo.append(lambda: FastAPIInstrumentor.uninstrument_app(app))
    if engine is not None:
        sqlalchemy_instrumentor = SQLAlchemyInstrumentor()
        # The instrumentation declares support for SQLAlchemy < 2.1 only and would silently
        # do nothing on 2.1; its event hooks work unchanged there
        # (tests/observability/test_tracing_and_logs.py proves the spans arrive).
        sqlalchemy_instrumentor.instrument(
            engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
        )
        tracing._undo.append(sqlalchemy_instrumentor.uninstrument)
    log.info("tracing_enabled", exporter=settings.otel_exporter if exporter is None else "custom")
    return tracing
