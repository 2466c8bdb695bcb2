"""The OpenAPI document is built without warnings (e.g. two operations sharing an id)."""

from __future__ import annotations

import warnings
from typing import Any


async def test_openapi_document_builds_without_warnings(app: Any) -> None:
    cached = app.openapi_schema
    app.openapi_schema = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            document = app.openapi()
    finally:
        app.openapi_schema = cached
    assert [str(w.message) for w in caught] == []
    operation_ids = [
        op["operationId"]
        for path in document["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))
