"""Cursor (keyset) pagination shared by every list endpoint.

A cursor is an opaque base64url token holding the sort key of the last item
returned. The next page is `WHERE (k1, k2) < (:v1, :v2)` on an index, so deep
pages cost the same as the first and concurrent inserts never shift items
between pages. Lists are newest first by default; ids are UUIDv7, so `id`
alone is already a time order.

    @router.get("/things", response_model=Page[ThingOut])
    async def list_things(session: TenantSession, page: PageParams) -> Page[ThingOut]:
        stmt = select(Thing).where(...)
        rows, next_cursor = await paginate(session, stmt, page, order_by=[Thing.id])
        return Page(items=[ThingOut.model_validate(r) for r in rows], next_cursor=next_cursor)
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tradeflow.errors import BadRequest

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InvalidCursor(BadRequest):
    slug, title = "invalid-cursor", "Invalid pagination cursor"


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one (null: the end)."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Opaque cursor for the next page.")


class PageRequest(BaseModel):
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


def _page_request(
    cursor: Annotated[
        str | None,
        Query(description="Cursor from the previous page's `next_cursor`.", max_length=512),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
) -> PageRequest:
    return PageRequest(cursor=cursor, limit=limit)


PageParams = Annotated[PageRequest, Depends(_page_request)]


def _encode_value(value: Any) -> list[Any]:
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, bool) or value is None:
        raise TypeError("cursor keys must be non-null scalars")
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, str):
        return ["s", value]
    raise TypeError(f"unsupported cursor key type {type(value).__name__}")


def _decode_value(item: Any) -> Any:
    tag, raw = item
    if tag == "u":
        return uuid.UUID(raw)
    if tag == "t":
        return datetime.fromisoformat(raw)
    if tag == "i" and isinstance(raw, int):
        return raw
    if tag == "s" and isinstance(raw, str):
        return raw
    raise ValueError(f"unknown cursor tag {tag!r}")


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        items = json.loads(raw)
        if not isinstance(items, list) or len(items) != arity:
            raise ValueError("wrong arity")
        return [_decode_value(i) for i in items]
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidCursor(
            "The cursor is not one this list issued; start again without `cursor`."
        ) from exc


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    page: PageRequest,
    *,
    order_by: Sequence[InstrumentedAttribute[Any]],
    descending: bool = True,
    scalars: bool = True,
) -> tuple[list[Any], str | None]:
    """Run `stmt` for one page ordered by `order_by` (a unique key, all one direction)."""
    if page.cursor:
        values = decode_cursor(page.cursor, arity=len(order_by))
        for column, value in zip(order_by, values, strict=True):
            if not isinstance(value, column.type.python_type):
                # A forged cursor with another key type must not reach PostgreSQL.
                raise InvalidCursor(
                    "The cursor is not one this list issued; start again without `cursor`."
                )
        key = tuple_(*order_by)
        stmt = stmt.where(key < tuple_(*values) if descending else key > tuple_(*values))
    stmt = stmt.order_by(*[(c.desc() if descending else c.asc()) for c in order_by])
    stmt = stmt.limit(page.limit + 1)
    result = await session.execute(stmt)
    rows: list[Any] = list(result.scalars().all() if scalars else result.all())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, c.key) for c in order_by])
    return rows, next_cursor
