"""Scopes for the events API: delivery logs are readable with `events:read` or `webhooks:read`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tradeflow.errors import Forbidden
from tradeflow.identity.auth import Authenticated, require_scopes
from tradeflow.identity.principal import Principal


class InsufficientScope(Forbidden):
    slug, title = "insufficient-scope", "Missing permission scopes"


def require_any_scope(*scopes: str) -> object:
    async def _check(principal: Authenticated) -> Principal:
        if not any(principal.has(s) for s in scopes):
            raise InsufficientScope(
                f"This needs one of the scopes {', '.join(scopes)}.", missing=list(scopes)
            )
        return principal

    return Depends(_check)


EventsRead = Annotated[Principal, require_scopes("events:read")]
EventsWrite = Annotated[Principal, require_scopes("events:write")]
DeliveriesRead = Annotated[Principal, require_any_scope("events:read", "webhooks:read")]
DeliveriesWrite = Annotated[Principal, require_any_scope("events:write", "webhooks:write")]
