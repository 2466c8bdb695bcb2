"""The delivery engine's statements as the worker's pinned connections plan them: one
generic plan per connection, made whatever the statistics say when it is made — an empty
queue at start-up, say — so no plan may read a queue table other than by an index."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import make_url

from tradeflow.events import completion, engine
from tradeflow.events.pinned import PLANNER_SETTINGS

QUEUE_TABLES = {"events", "deliveries", "delivery_promotions", "delivery_attempts"}


def _connect(url: str) -> psycopg.Connection[Any]:
    u = make_url(url)
    return psycopg.connect(
        dbname=u.database,
        user=u.username,
        password=u.password,
        host=u.query.get("host", u.host) if u.query else u.host,  # type: ignore[arg-type]
        port=u.port,
        autocommit=True,
    )


def generic_plan(
    url: str, statement: TextClause, settings: dict[str, str], *, empty: bool = False
) -> str:
    """The statement's generic plan under `settings`; with `empty`, as planned on an empty
    queue (the tables truncated in a transaction that is rolled back)."""
    sql = str(statement.compile(dialect=asyncpg_dialect.dialect()))
    with _connect(url) as conn, conn.transaction(force_rollback=True):
        if empty:
            conn.execute("TRUNCATE deliveries, delivery_attempts, delivery_promotions")
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        return "\n".join(row[0] for row in conn.execute(f"EXPLAIN (GENERIC_PLAN) {sql}"))


@pytest.mark.parametrize("empty", [True, False], ids=["empty queue", "as it is"])
@pytest.mark.parametrize(
    "statement",
    [engine._DISPATCH, engine._CLAIM, completion._COMPLETE],
    ids=["dispatch", "claim", "complete"],
)
def test_no_engine_statement_scans_a_queue_table(
    database_url: str, statement: Any, empty: bool
) -> None:
    plan = generic_plan(database_url, statement, PLANNER_SETTINGS, empty=empty)
    scanned = set(re.findall(r"Seq Scan on (\w+)", plan))
    assert not scanned & QUEUE_TABLES, plan


def test_the_check_sees_a_scan_when_one_is_planned(database_url: str) -> None:
    """Without the settings, the completion's generic plan made on an empty queue scans
    deliveries — the plan the worker once kept through a whole backlog."""
    plan = generic_plan(
        database_url, completion._COMPLETE, {"plan_cache_mode": "force_generic_plan"}, empty=True
    )
    assert "Seq Scan on deliveries" in plan, plan
