from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from events.support import make_tenant
from tradeflow.db import Database
from tradeflow.events import EventPayload, event_type, publish
from tradeflow.events.engine import dispatch_batch


@event_type("widget.created", aggregate="widget")
class WidgetCreated(EventPayload):
    """A widget was created (test event)."""

    widget_id: uuid.UUID
    name: str


async def test_publish_numbers_events_per_aggregate(rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    a, b = uuid.uuid4(), uuid.uuid4()
    async with rolled_back.tenant_session(tenant) as s:
        e1 = await publish(
            s, WidgetCreated(widget_id=a, name="x"), tenant_id=tenant, aggregate_id=a
        )
        e2 = await publish(
            s, WidgetCreated(widget_id=a, name="y"), tenant_id=tenant, aggregate_id=a
        )
        e3 = await publish(
            s, WidgetCreated(widget_id=b, name="z"), tenant_id=tenant, aggregate_id=b
        )
        await s.commit()
    assert (e1.sequence, e2.sequence, e3.sequence) == (1, 2, 1)
    assert e1.type == "widget.created"
    assert e1.aggregate_type == "widget"
    async with rolled_back.system_session() as s:
        rows = (
            await s.execute(text("SELECT payload FROM events WHERE id = :id"), {"id": e2.id})
        ).all()
    assert rows[0].payload == {"widget_id": str(a), "name": "y"}


async def test_no_event_without_commit(rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    wid = uuid.uuid4()
    async with rolled_back.tenant_session(tenant) as s:
        await publish(s, WidgetCreated(widget_id=wid, name="x"), tenant_id=tenant, aggregate_id=wid)
        await s.rollback()
    async with rolled_back.system_session() as s:
        count = (
            await s.execute(
                text("SELECT count(*) FROM events WHERE aggregate_id = :a"), {"a": str(wid)}
            )
        ).scalar()
    assert count == 0


async def test_rls_refuses_event_for_another_tenant(rolled_back: Database) -> None:
    mine, other = await make_tenant(rolled_back), await make_tenant(rolled_back)
    wid = uuid.uuid4()
    with pytest.raises(Exception, match="row-level security"):
        async with rolled_back.tenant_session(mine) as s:
            await publish(
                s, WidgetCreated(widget_id=wid, name="x"), tenant_id=other, aggregate_id=wid
            )


async def test_dispatch_fans_out_to_matching_subscribers(rolled_back: Database) -> None:
    tenant = await make_tenant(rolled_back)
    async with rolled_back.system_session() as s:
        for name, types in (
            ("all", None),
            ("widgets", ["widget.*"]),
            ("orders", ["order.created"]),
        ):
            await s.execute(
                text(
                    "INSERT INTO subscribers (id, tenant_id, kind, name, event_types) "
                    "VALUES (:id, :t, 'webhook', :n, :types)"
                ),
                {"id": uuid.uuid4(), "t": tenant, "n": name, "types": types},
            )
        await s.commit()
    wid = uuid.uuid4()
    async with rolled_back.tenant_session(tenant) as s:
        await publish(s, WidgetCreated(widget_id=wid, name="x"), tenant_id=tenant, aggregate_id=wid)
        await s.commit()
    async with rolled_back.system_session() as s:
        result = await dispatch_batch(s, limit=100)
        await s.commit()
        names = (
            (
                await s.execute(
                    text(
                        "SELECT s.name FROM deliveries d "
                        "JOIN subscribers s ON s.id = d.subscriber_id "
                        "WHERE d.aggregate = :agg ORDER BY s.name"
                    ),
                    {"agg": f"widget:{wid}"},
                )
            )
            .scalars()
            .all()
        )
    assert result is not None
    assert result.events >= 1
    assert names == ["all", "widgets"]
