"""Liveness and readiness.

`/healthz` answers while the process runs. `/readyz` answers 200 only when the
database is reachable and its schema is at the migrations' head(s); otherwise
503 with a problem body naming what is not ready.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tradeflow.errors import problem_response
from tradeflow.migrations import alembic_config, expected_heads

router = APIRouter(tags=["health"])


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def missing_migrations(current: set[str]) -> tuple[list[str], list[str]]:
    """The heads not yet applied, and the recorded revisions this release does not know.

    `alembic_version` records only the tips of what was applied: a revision
    another branch `depends_on` is applied but not recorded, so "at head"
    means every head is a recorded revision or one of their ancestors.
    """
    scripts = _scripts()
    applied: set[str] = set()
    unknown: list[str] = []
    stack = list(current)
    while stack:
        rev = stack.pop()
        if rev in applied:
            continue
        try:
            revision = scripts.get_revision(rev)
        except CommandError:
            revision = None
        if revision is None:
            # Written by a newer release; its migrations are additive, so this one can serve.
            unknown.append(rev)
            continue
        applied.add(revision.revision)
        stack.extend(_as_tuple(revision.down_revision))
        for dependency in _as_tuple(revision.dependencies):
            stack.extend(r.revision for r in scripts.get_revisions(dependency) if r is not None)
    return sorted(expected_heads() - applied), sorted(unknown)


@router.get("/healthz", summary="Process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: database reachable, migrations at head")
async def readyz(request: Request) -> Any:
    db = request.app.state.db
    checks: dict[str, str] = {}
    not_ready: list[str] = []
    try:
        async with db.system_session() as session:
            rows = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
        checks["database"] = "ok"
        current = {r[0] for r in rows}
        missing, unknown = missing_migrations(current)
        if not missing:
            checks["migrations"] = "ok"
            if unknown:
                checks["migrations"] = f"ok (newer revisions present: {', '.join(unknown)})"
        else:
            checks["migrations"] = f"behind: missing {', '.join(missing)}"
            not_ready.append(f"migrations not at head (missing {', '.join(missing)})")
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
        not_ready.append(f"database unreachable ({type(exc).__name__})")
    if not_ready:
        return problem_response(
            request,
            status=503,
            slug="not-ready",
            title="Not ready",
            detail="; ".join(not_ready),
            checks=checks,
        )
    return JSONResponse({"status": "ready", "checks": checks})
