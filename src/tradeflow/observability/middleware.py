"""The outermost ASGI middleware: request id, access log, metrics, body limit, last-resort 500.

Written as plain ASGI (not `BaseHTTPMiddleware`) so it adds no task switch per
request and sees exceptions before Starlette's error middleware does.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradeflow.errors import PROBLEM_CONTENT_TYPE, problem_type
from tradeflow.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("tradeflow.http")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed (chunked) body passes the limit.

    An `HTTPException` on purpose: FastAPI turns any other exception raised while
    it reads the body into a generic 400, but re-raises HTTP exceptions, so the
    client gets the 413 problem from the error handlers.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body exceeds the {limit}-byte limit.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _with_prefix(actual: str, route: Any, template: str) -> str:
    """Complete a route's own template with the prefixes of the routers it is nested in.

    Newer FastAPI releases keep each route's path relative to its router
    (`/auth/login` under `/v1`), older ones the full path: when the route's
    pattern does not match the whole request path, the literal part before
    the matching suffix is the routers' prefix.
    """
    regex = getattr(route, "path_regex", None)
    if actual == template or regex is None or regex.match(actual):
        return template
    for i in range(1, len(actual)):
        if actual[i] == "/" and regex.match(actual[i:]):
            return actual[:i] + template
    return template


def _route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/orders/{order_id}`), never the raw path.

    Metrics are labelled by it, so unmatched paths share one label instead of
    letting scanners create a series per URL.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return _with_prefix(scope.get("path", ""), route, str(path))
    # Plain Starlette routes (e.g. /openapi.json) leave only their endpoint in the scope.
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is not None and app is not None:
        for candidate in getattr(app, "routes", ()):
            if getattr(candidate, "endpoint", None) is endpoint:
                return str(candidate.path)
    return "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}
        response_started = False
        path = scope.get("path", "")
        method = scope.get("method", "GET")

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        declared = _header(scope, b"content-length")
        too_large = (
            declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        )
        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            if too_large:
                await self._problem(
                    send_wrapper,
                    scope,
                    413,
                    "payload-too-large",
                    "Request body too large",
                    f"The body exceeds the {self.max_body_bytes}-byte limit.",
                )
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if not response_started:
                await self._problem(
                    send_wrapper,
                    scope,
                    413,
                    "payload-too-large",
                    "Request body too large",
                    f"The body exceeds the {self.max_body_bytes}-byte limit.",
                )
        except Exception:
            log.exception("unhandled_error", path=path, method=method)
            if not response_started:
                await self._problem(
                    send_wrapper,
                    scope,
                    500,
                    "internal-error",
                    "Internal server error",
                    "An unexpected error occurred; quote the request_id when reporting it.",
                )
        finally:
            elapsed = time.perf_counter() - started
            template = _route_template(scope)
            status = str(status_holder["status"])
            HTTP_REQUESTS.labels(template, method, status).inc()
            HTTP_LATENCY.labels(template, method, status).observe(elapsed)
            state: dict[str, Any] = scope.get("state", {})
            # Who called is known only after authentication, which sets these on the state.
            known = {k: str(state[k]) for k in ("tenant_id", "principal_id") if state.get(k)}
            log.info(
                "http_request",
                method=method,
                path=path,
                route=template,
                status=int(status),
                duration_ms=round(elapsed * 1000, 2),
                **known,
            )

    @staticmethod
    async def _problem(
        send: Send, scope: Scope, status: int, slug: str, title: str, detail: str
    ) -> None:
        body = json.dumps(
            {
                "type": problem_type(slug),
                "title": title,
                "status": status,
                "detail": detail,
                "instance": scope.get("path", ""),
                "request_id": scope.get("state", {}).get("request_id"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
