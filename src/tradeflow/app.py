"""The application factory: one FastAPI app per process, built from settings and a database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from tradeflow import __version__
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.errors import install_error_handlers
from tradeflow.kit.idempotency import IdempotentReplay, replay_response
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from tradeflow.observability import health, metrics
from tradeflow.observability.middleware import RequestContextMiddleware

API_DESCRIPTION = """
Tradeflow's REST API. Errors are RFC 9457 `application/problem+json`; creating
POSTs accept `Idempotency-Key`; lists use cursor pagination; rate limits are
announced with `RateLimit` and `RateLimit-Policy` headers.
"""


def create_app(
    settings: Settings, db: Database, *, keyring: Keyring, owns_db: bool = False
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_db:
            await db.dispose()

    app = FastAPI(
        title="Tradeflow",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.keyring = keyring
    app.state.ratelimiter = RateLimiter(settings)

    install_error_handlers(app)

    @app.exception_handler(IdempotentReplay)
    async def _replay(_: Request, exc: IdempotentReplay) -> Response:
        return replay_response(exc)

    app.include_router(health.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Tradeflow API")

    from tradeflow.api import install_routers

    install_routers(app, settings)

    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
