"""`/v1/connectors/{connector_id}/commerceml/…`: 1C's exchange endpoint and its audit trail."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tradeflow.connectors.commerceml import exchange
from tradeflow.connectors.commerceml.models import Exchange
from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.connectors.commerceml.schemas import ExchangeOut
from tradeflow.errors import NotFound
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.integrations import service as integrations
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams, paginate
from tradeflow.kit.ratelimit import client_ip

router = APIRouter(prefix="/connectors/{connector_id}/commerceml", tags=["connectors"])
Read = Annotated[Principal, require_scopes("connectors:read")]


class NotACommerceMLConnector(NotFound):
    slug, title = "connector-not-found", "Connector not found"


class ExchangeNotFound(NotFound):
    slug, title = "commerceml-exchange-not-found", "Exchange not found"


_PLAIN = {"text/plain": {"schema": {"type": "string"}}}
EXCHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`success`, `failure\\n<reason>`, `zip=no\\nfile_limit=N`, "
        "`success\\n<cookie name>\\n<cookie value>`; for `type=sale&mode=query` a "
        "CommerceML document.",
        "content": {**_PLAIN, "application/xml": {"schema": {"type": "string"}}},
    },
    401: {"description": "`failure`: wrong login or password, or no session.", "content": _PLAIN},
    **problems(429),
    404: {"description": "`failure`: no such exchange.", "content": _PLAIN},
}

EXCHANGE_DESCRIPTION = """
The exchange endpoint 1C:Enterprise's standard web-shop exchange module talks to
(the "1C-Bitrix" exchange protocol; Tradeflow is the site, 1C polls it). Give 1C
this URL with the connector's `login` and `password`.

**This endpoint speaks 1C's protocol, not this API's**: answers are plain text
(`success`, `failure\\n<reason>`, `progress`) or CommerceML XML, never
problem+json, and it authenticates with HTTP Basic on `mode=checkauth` and then
the session cookie that answer names — not with an API key.

* `type=catalog`: `checkauth`, `init`, `file` (POST a chunk of `filename`;
  chunks up to the `file_limit` that `init` announced), `import` (apply
  `filename`: import.xml — products, SKUs — or offers.xml — variants, prices).
* `type=sale`: `checkauth`, `init`, `query` (orders not yet acknowledged, as a
  CommerceML document), `success` (acknowledge the last query), `file` (1C's
  order changes: recorded in the audit, not applied).

Every import and query is recorded: `GET …/commerceml/exchanges`.
"""


# 1C sends some modes as GET and uploads as POST; one handler, two operations (each needs
# its own operationId in the OpenAPI document).
@router.get(
    "/exchange",
    operation_id="commerceml_exchange_get",
    responses=EXCHANGE_RESPONSES,
    response_class=Response,
    description=EXCHANGE_DESCRIPTION,
    summary="1C exchange (CommerceML 2)",
)
@router.post(
    "/exchange",
    operation_id="commerceml_exchange_post",
    responses=EXCHANGE_RESPONSES,
    response_class=Response,
    description=EXCHANGE_DESCRIPTION,
    summary="1C exchange (CommerceML 2), uploads",
)
async def commerceml_exchange(
    connector_id: uuid.UUID,
    request: Request,
    type: Annotated[str | None, Query(max_length=20, description="catalog or sale")] = None,
    mode: Annotated[
        str | None,
        Query(max_length=20, description="checkauth, init, file, import, query, success"),
    ] = None,
    filename: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    if mode == "checkauth":
        # Password guessing is held to the same limit as staff logins, per client address.
        await request.app.state.ratelimiter.check(
            request,
            policy="auth",
            limit=request.app.state.settings.ratelimit_auth,
            key=f"commerceml:{client_ip(request)}",
        )
    body = await request.body() if request.method == "POST" else b""
    reply = await exchange.handle(
        request.app.state.db,
        request.app.state.keyring,
        connector_id=connector_id,
        exchange_type=type,
        mode=mode,
        filename=filename,
        authorization=request.headers.get("authorization"),
        cookie=request.cookies.get(exchange.COOKIE),
        body=body,
        max_body_bytes=request.app.state.settings.max_body_bytes,
    )
    return Response(
        reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers
    )


async def _instance(session: Any, tenant_id: uuid.UUID, connector_id: uuid.UUID) -> None:
    instance = await integrations.get_instance(session, tenant_id, connector_id)
    if instance.kind != exchange.KIND:
        raise NotACommerceMLConnector(f"Connector {connector_id} is not a CommerceML connector.")


@router.get("/exchanges", response_model=Page[ExchangeOut], responses=problems(400, 401, 403, 404))
async def list_exchanges(
    connector_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    status: Annotated[str | None, Query(max_length=12)] = None,
) -> Page[ExchangeOut]:
    """The audit of a CommerceML connector's exchanges, newest first: each import (counts,
    rows not applied with 1C's Ид and the reason, the error of a file that could not be
    read) and each order query with the orders it sent and whether 1C acknowledged it."""
    await _instance(session, principal.tenant_id, connector_id)
    stmt = CommerceMLRepository(session, principal.tenant_id).exchanges_query(connector_id)
    if status:
        stmt = stmt.where(Exchange.status == status)
    rows, cursor = await paginate(session, stmt, page, order_by=[Exchange.id])
    return Page(items=[ExchangeOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/exchanges/{exchange_id}", response_model=ExchangeOut, responses=problems(401, 403, 404)
)
async def get_exchange(
    connector_id: uuid.UUID, exchange_id: uuid.UUID, principal: Read, session: TenantSession
) -> ExchangeOut:
    """One exchange with all its counts and problems."""
    await _instance(session, principal.tenant_id, connector_id)
    row = await CommerceMLRepository(session, principal.tenant_id).exchange(exchange_id)
    if row is None or row.connector_id != connector_id:
        raise ExchangeNotFound(f"No exchange {exchange_id} of connector {connector_id}.")
    return ExchangeOut.model_validate(row)
