from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradeflow.db import Database
from tradeflow.kit.ids import uuid7
from tradeflow.kit.pagination import (
    InvalidCursor,
    PageRequest,
    decode_cursor,
    encode_cursor,
    paginate,
)


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = "pagination_probe"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String)


async def _setup(session: AsyncSession, n: int) -> list[Item]:
    conn = await session.connection()
    await conn.run_sync(lambda c: _Base.metadata.create_all(c))
    items = [Item(id=uuid7(), rank=i % 3, name=f"item {i}") for i in range(n)]
    session.add_all(items)
    await session.flush()
    return items


def test_cursor_round_trip_types() -> None:
    values = [uuid.uuid4(), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 42, "x"]
    assert decode_cursor(encode_cursor(values), arity=4) == values


@pytest.mark.parametrize("bad", ["", "!!!", "bm90IGpzb24", encode_cursor([1, 2])])
def test_bad_cursor_is_a_clear_400(bad: str) -> None:
    with pytest.raises(InvalidCursor) as info:
        decode_cursor(bad, arity=1)
    assert info.value.status == 400


async def test_pages_cover_everything_once_newest_first(rolled_back: Database) -> None:
    async with rolled_back.system_session() as session:
        items = await _setup(session, 23)
        seen: list[uuid.UUID] = []
        cursor = None
        pages = 0
        while True:
            rows, cursor = await paginate(
                session, select(Item), PageRequest(cursor=cursor, limit=5), order_by=[Item.id]
            )
            seen += [r.id for r in rows]
            pages += 1
            if cursor is None:
                break
        assert pages == 5
        assert seen == sorted((i.id for i in items), reverse=True)


async def test_composite_key_ascending(rolled_back: Database) -> None:
    async with rolled_back.system_session() as session:
        items = await _setup(session, 10)
        rows, cursor = await paginate(
            session,
            select(Item),
            PageRequest(limit=4),
            order_by=[Item.rank, Item.id],
            descending=False,
        )
        rest, end = await paginate(
            session,
            select(Item),
            PageRequest(cursor=cursor, limit=100),
            order_by=[Item.rank, Item.id],
            descending=False,
        )
        assert end is None
        expected = sorted(items, key=lambda i: (i.rank, i.id))
        assert [r.id for r in rows + rest] == [i.id for i in expected]


async def test_cursor_of_the_wrong_key_type_is_400(rolled_back: Database) -> None:
    async with rolled_back.system_session() as session:
        await _setup(session, 2)
        with pytest.raises(InvalidCursor):
            await paginate(
                session,
                select(Item),
                PageRequest(cursor=encode_cursor([7]), limit=1),
                order_by=[Item.id],
            )
