"""structlog configured for one JSON object per line.

Request-scoped fields (`request_id`, `trace_id`, `tenant_id`) live in
contextvars bound by the request middleware and the worker, so every line
logged while handling a request carries them.
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, WrappedLogger


def _add_trace(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if "trace_id" in event_dict:
        return event_dict
    try:
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event_dict["trace_id"] = format(ctx.trace_id, "032x")
            event_dict["span_id"] = format(ctx.span_id, "016x")
    except Exception:  # noqa: S110 — logging must never fail because tracing did
        pass
    return event_dict


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current `sys.stderr`."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def bind_principal(
    state: Any, *, tenant_id: uuid.UUID | str, principal_id: uuid.UUID | str | None = None
) -> None:
    """Record who is calling, once authentication knows it.

    `state` is the request's `request.state`; the access log line reads it
    from there, and every later log line of the request gets the ids from the
    structlog context.
    """
    state.tenant_id = str(tenant_id)
    fields = {"tenant_id": str(tenant_id)}
    if principal_id is not None:
        state.principal_id = str(principal_id)
        fields["principal_id"] = str(principal_id)
    structlog.contextvars.bind_contextvars(**fields)


def configure_logging(
    level: str = "info", fmt: str = "json", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library to write to `stream` (stderr by default)."""
    out = stream if stream is not None else sys.stderr
    # Without an explicit stream, write to whatever `sys.stderr` is when a line is logged:
    # a stream captured at configuration time may be closed later (a test runner's or a
    # CLI runner's capture), and a log call must never fail the work it describes.
    logger_factory: Any = (
        structlog.PrintLoggerFactory(file=stream)
        if stream is not None
        else (lambda *_: structlog.PrintLogger(file=sys.stderr))
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=logger_factory,
        cache_logger_on_first_use=False,
    )
    # Route the standard library (uvicorn, alembic, sqlalchemy) through the same renderer.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Our middleware logs each request once; uvicorn's access line would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # The embedded server's wrapper narrates every pg_ctl call; keep its warnings only.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
