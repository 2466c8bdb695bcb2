"""Response bodies of the CommerceML exchange audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ExchangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connector_id: uuid.UUID
    session_id: uuid.UUID | None
    exchange_type: str = Field(description="`catalog` or `sale`.")
    mode: str = Field(description="`import`, `query` or `file`.")
    source: str = Field(description="`http` (1C's exchange) or `cli`.")
    filename: str | None
    size_bytes: int
    sha256: str | None
    status: str = Field(
        description="`success` or `failure`; an order query is `sent` until 1C acknowledges "
        "it (`acknowledged`)."
    )
    counts: dict[str, int] = Field(
        description="What happened: products_created, skus_updated, prices_changed, "
        "problems, conflicts, orders, …"
    )
    problems: list[dict[str, Any]] = Field(
        description="Rows not applied: `{id: 1C's Ид, reason}` (at most 500)."
    )
    orders: list[dict[str, Any]] = Field(
        description="For an order query: `{order_id, version}` of each order sent."
    )
    error: str | None = Field(description="Why the whole step failed (a file we cannot read).")
    started_at: datetime
    finished_at: datetime | None
