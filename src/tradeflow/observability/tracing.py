"""OpenTelemetry tracing for FastAPI, SQLAlchemy and httpx; off unless an exporter is configured."""

from __future__ import annotations

from typing import Any

import structlog

from tradeflow.config import Settings

log = structlog.get_logger(__name__)
_configured = False


def configure_tracing(settings: Settings, *, app: Any = None, engine: Any = None) -> bool:
    """Install the tracer provider and instrumentations once per process; returns whether enabled."""
    global _configured
    if settings.otel_exporter == "none":
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    if not _configured:
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name})
        )
        exporter: SpanExporter
        if settings.otel_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint) if settings.otel_endpoint \
                else OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument()
        _configured = True
    if app is not None:
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    if engine is not None:
        SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
    log.info("tracing_enabled", exporter=settings.otel_exporter)
    return True
