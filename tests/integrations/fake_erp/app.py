"""A reference fake ERP: a separate HTTP service with its own storage and a flaky mode.

It stands in for a seller's ERP/accounting system in the integration and
chaos tests. It is deliberately *not* Tradeflow code and shares nothing with
it: its storage is its own SQLite file (an ERP's database, not ours), and it
behaves like the remote systems connectors meet in the field:

* records in collections (`customers`, `invoices`, `payments`,
  `credit_notes`), each with a server-assigned id (`INV-17`), a `version`
  that every change bumps, an `updated_at`, and an `ETag`;
* `GET /api/v1/{collection}?field=value` finds records by any top-level field
  (how a connector looks a document up by our reference);
* `PATCH` honours `If-Match` (412 when the record changed meanwhile);
* `GET /api/v1/{collection}?updated_since=&cursor=&limit=` lists what changed
  (oldest change first, keyset pages, `next_cursor` until the last page);
* **no uniqueness on the reference field**: a client that creates twice gets
  two records, so duplicates are visible to the tests.

Flaky mode (`POST /_control`) draws, per API request: 429 with
`Retry-After`; 500 *before* anything is stored; for writes, a "timeout after
commit" (the change is committed, then the response is held back longer than
any sane client waits); and concurrent edits by "its users", who change a
random record's fields right after our writes.

`/_control`, `/_dump/{collection}` and `/_stats` are for the tests; they are
never flaky and need no token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

COLLECTIONS = {"customers": "CUST", "invoices": "INV", "payments": "PAY", "credit_notes": "CN"}
RESERVED = {"id", "version", "updated_at", "created_at"}


@dataclass
class Flakiness:
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 5.0
    user_edit_rate: float = 0.0
    # Fields "its users" edit (a clerk adding a note, a controller changing a due date).
    user_edit_fields: list[str] = field(default_factory=lambda: ["notes"])
    seed: int | None = None


@dataclass
class Stats:
    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    timeouts_after_commit: int = 0
    creates: int = 0
    updates: int = 0
    conflicts_412: int = 0
    user_edits: int = 0
    change_pages: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Store:
    """The ERP's own database: one SQLite file, one table of JSON records."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (collection TEXT NOT NULL, seq INTEGER NOT NULL,"
            " id TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL, data TEXT NOT NULL)"
        )

    def _row(self, row: tuple[Any, ...]) -> dict[str, Any]:
        rid, version, created_at, updated_at, data = row
        return {
            **json.loads(data),
            "id": rid,
            "version": version,
            "created_at": created_at,
            "updated_at": updated_at,
        }

    def create(self, collection: str, data: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self._lock:
            seq = self._db.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM records WHERE collection = ?",
                (collection,),
            ).fetchone()[0]
            rid = f"{COLLECTIONS[collection]}-{seq}"
            self._db.execute(
                "INSERT INTO records VALUES (?, ?, ?, 1, ?, ?, ?)",
                (collection, seq, rid, now, now, json.dumps(data)),
            )
            return {**data, "id": rid, "version": 1, "created_at": now, "updated_at": now}

    def get(self, collection: str, rid: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, version, created_at, updated_at, data FROM records "
                "WHERE collection = ? AND id = ?",
                (collection, rid),
            ).fetchone()
        return self._row(row) if row else None

    def find(self, collection: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, version, created_at, updated_at, data FROM records "
                "WHERE collection = ? ORDER BY seq",
                (collection,),
            ).fetchall()
        out = []
        for row in rows:
            record = self._row(row)
            if all(str(record.get(k)) == v for k, v in filters.items()):
                out.append(record)
        return out

    def update(
        self, collection: str, rid: str, changes: dict[str, Any], if_version: int | None
    ) -> dict[str, Any] | int | None:
        """The updated record; None if missing; the current version (int) on a stale If-Match."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, version, created_at, updated_at, data FROM records "
                "WHERE collection = ? AND id = ?",
                (collection, rid),
            ).fetchone()
            if row is None:
                return None
            current = self._row(row)
            if if_version is not None and current["version"] != if_version:
                return int(current["version"])
            data = {k: v for k, v in current.items() if k not in RESERVED}
            data.update(changes)
            now = _now()
            version = current["version"] + 1
            self._db.execute(
                "UPDATE records SET version = ?, updated_at = ?, data = ? WHERE id = ?",
                (version, now, json.dumps(data), rid),
            )
            return {
                **data,
                "id": rid,
                "version": version,
                "created_at": current["created_at"],
                "updated_at": now,
            }

    def changed(
        self, collection: str, *, since: str | None, after: tuple[str, int] | None, limit: int
    ) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
        """Records changed at or after `since`, oldest change first, keyset-paged by
        (updated_at, seq): a page and the position after its last record (None: no more)."""
        sql = (
            "SELECT id, version, created_at, updated_at, data, seq FROM records "
            "WHERE collection = ?"
        )
        args: list[Any] = [collection]
        if since:
            sql += " AND updated_at >= ?"
            args.append(since)
        if after is not None:
            sql += " AND (updated_at > ? OR (updated_at = ? AND seq > ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY updated_at, seq LIMIT ?"
        args.append(limit + 1)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        page = rows[:limit]
        position = (page[-1][3], page[-1][5]) if len(rows) > limit else None
        return [self._row(r[:5]) for r in page], position

    def random_record(self, collection: str, rng: random.Random) -> dict[str, Any] | None:
        with self._lock:
            count = self._db.execute(
                "SELECT count(*) FROM records WHERE collection = ?", (collection,)
            ).fetchone()[0]
            if not count:
                return None
            row = self._db.execute(
                "SELECT id, version, created_at, updated_at, data FROM records "
                "WHERE collection = ? ORDER BY seq LIMIT 1 OFFSET ?",
                (collection, rng.randrange(count)),
            ).fetchone()
        return self._row(row)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


PAGING = {"updated_since", "cursor", "limit"}


def _encode_cursor(position: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        updated_at, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad cursor") from exc
    return str(updated_at), int(seq)


def _etag(record: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{record["version"]}"'}


def create_app(db_path: Path, *, token: str) -> Starlette:
    store = Store(db_path)
    flaky = Flakiness()
    stats = Stats()
    rng = random.Random()

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    def draw(rate: float) -> bool:
        return rate > 0 and rng.random() < rate

    async def gate(request: Request, collection: str) -> Response | None:
        stats.requests += 1
        if not authorised(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if collection not in COLLECTIONS:
            return JSONResponse({"error": f"no collection {collection}"}, status_code=404)
        if draw(flaky.rate_limit_rate):
            stats.rate_limited += 1
            return JSONResponse(
                {"error": "slow down"},
                status_code=429,
                headers={"Retry-After": str(flaky.retry_after)},
            )
        if draw(flaky.error_rate):
            stats.errors += 1
            return JSONResponse({"error": "internal error"}, status_code=500)
        return None

    def user_edit(collection: str) -> None:
        """Someone at the seller edits a random record in the ERP's own UI."""
        if not draw(flaky.user_edit_rate):
            return
        record = store.random_record(collection, rng)
        if record is None:
            return
        name = rng.choice(flaky.user_edit_fields)
        store.update(
            collection, record["id"], {name: f"edited by erp user {rng.randrange(10**6)}"}, None
        )
        stats.user_edits += 1

    async def after_commit(response: Response) -> Response:
        # The write is committed; now maybe hold the answer back past the client's timeout.
        if draw(flaky.timeout_rate):
            stats.timeouts_after_commit += 1
            await asyncio.sleep(flaky.hang_seconds)
        return response

    async def collection_root(request: Request) -> Response:
        collection = request.path_params["collection"]
        if (blocked := await gate(request, collection)) is not None:
            return blocked
        if request.method == "GET":
            filters = dict(request.query_params)
            if PAGING & filters.keys():
                return changed_since(collection, filters)
            return JSONResponse({"items": store.find(collection, filters)})
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid json"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected an object"}, status_code=422)
        data = {k: v for k, v in body.items() if k not in RESERVED}
        record = store.create(collection, data)
        stats.creates += 1
        user_edit(collection)
        return await after_commit(JSONResponse(record, status_code=201, headers=_etag(record)))

    async def collection_item(request: Request) -> Response:
        collection = request.path_params["collection"]
        rid = request.path_params["rid"]
        if (blocked := await gate(request, collection)) is not None:
            return blocked
        if request.method == "GET":
            found = store.get(collection, rid)
            if found is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse(found, headers=_etag(found))
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid json"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected an object"}, status_code=422)
        if_match = request.headers.get("if-match")
        version = int(if_match.strip('"')) if if_match else None
        result = store.update(
            collection, rid, {k: v for k, v in body.items() if k not in RESERVED}, version
        )
        if result is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        if isinstance(result, int):
            stats.conflicts_412 += 1
            return JSONResponse({"error": "version mismatch", "version": result}, status_code=412)
        stats.updates += 1
        user_edit(collection)
        return await after_commit(JSONResponse(result, headers=_etag(result)))

    def changed_since(collection: str, params: dict[str, str]) -> Response:
        """`?updated_since=&cursor=&limit=`: what changed, in pages, as common ERPs list it."""
        try:
            limit = max(1, min(int(params.get("limit", "100")), 1000))
            after = _decode_cursor(params["cursor"]) if params.get("cursor") else None
        except ValueError:
            return JSONResponse({"error": "bad cursor or limit"}, status_code=400)
        since = params.get("updated_since") or None
        if since is not None:
            try:
                # Any ISO 8601 form is accepted; stored times are UTC, microseconds, "Z".
                parsed = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                return JSONResponse({"error": "bad updated_since"}, status_code=400)
            since = parsed.astimezone(UTC).isoformat(timespec="microseconds")
            since = since.replace("+00:00", "Z")
        items, position = store.changed(collection, since=since, after=after, limit=limit)
        stats.change_pages += 1
        return JSONResponse(
            {"items": items, "next_cursor": _encode_cursor(position) if position else None}
        )

    async def control(request: Request) -> Response:
        nonlocal rng
        if request.method == "POST":
            body = await request.json()
            for key, value in body.items():
                if not hasattr(flaky, key):
                    return JSONResponse({"error": f"unknown setting {key}"}, status_code=422)
                setattr(flaky, key, value)
            if flaky.seed is not None:
                rng = random.Random(flaky.seed)
        return JSONResponse(dict(flaky.__dict__))

    async def user_edit_endpoint(request: Request) -> Response:
        """A named user edit (tests): `{"fields": {...}}` on one record, bumping its version."""
        body = await request.json()
        result = store.update(
            request.path_params["collection"], request.path_params["rid"], body["fields"], None
        )
        if not isinstance(result, dict):
            return JSONResponse({"error": "not found"}, status_code=404)
        stats.user_edits += 1
        return JSONResponse(result)

    async def dump(request: Request) -> Response:
        return JSONResponse({"items": store.find(request.path_params["collection"], {})})

    async def stats_endpoint(_: Request) -> Response:
        return JSONResponse(stats.as_dict())

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/_control", control, methods=["GET", "POST"]),
            Route("/_stats", stats_endpoint),
            Route("/_dump/{collection}", dump),
            Route("/_edit/{collection}/{rid}", user_edit_endpoint, methods=["POST"]),
            Route("/api/v1/{collection}", collection_root, methods=["GET", "POST"]),
            Route("/api/v1/{collection}/{rid}", collection_item, methods=["GET", "PATCH"]),
        ]
    )
