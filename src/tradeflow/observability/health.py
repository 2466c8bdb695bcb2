"""Liveness and readiness.

`/healthz` answers while the process runs. `/readyz` answers 200 only when the
database is reachable and its schema is at the migrations' head(s); otherwise
503 with a problem body naming what is not ready.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tradeflow.errors import problem_response
from tradeflow.migrations import expected_heads

router = APIRouter(tags=["health"])


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
        expected = expected_heads()
        if current == expected:
            checks["migrations"] = "ok"
        else:
            missing = sorted(expected - current)
            checks["migrations"] = f"behind: expected {sorted(expected)}, found {sorted(current)}"
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
