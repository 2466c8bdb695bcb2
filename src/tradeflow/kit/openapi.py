"""OpenAPI helpers shared by the contexts' endpoints."""

from __future__ import annotations

from typing import Any

from tradeflow.errors import PROBLEM_CONTENT_TYPE

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an endpoint: each status answered with a problem+json body."""
    return {
        s: {
            "description": "Problem",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        for s in statuses
    }
