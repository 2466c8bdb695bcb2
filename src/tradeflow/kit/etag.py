"""`ETag` / `If-Match` for resources carrying an integer `version` (optimistic concurrency).

A resource's ETag is its version in quotes (`"3"`). An update that sends
`If-Match` must name the current one (or `*`), else 412; callers decide
whether a missing `If-Match` is allowed (`required=True` answers 428).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from tradeflow.errors import PreconditionFailed, PreconditionRequired

# The optional `If-Match` header of an update endpoint (checked with `check_if_match`).
IfMatch = Annotated[
    str | None, Header(description="The ETag you read; on mismatch 412 (optional).")
]


class VersionMismatch(PreconditionFailed):
    slug, title = "version-mismatch", "The resource changed since it was read"


class IfMatchRequired(PreconditionRequired):
    slug, title = "if-match-required", "If-Match required"


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, current: int, *, required: bool = False) -> None:
    if if_match is None:
        if required:
            raise IfMatchRequired(f"Send If-Match: {etag(current)} (the ETag you read).")
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in wanted and etag(current) not in wanted:
        raise VersionMismatch(
            f"If-Match does not match the current version {etag(current)}; re-read and retry.",
            current_etag=etag(current),
        )
