"""The sandbox processor's own storage: a separate PostgreSQL database.

Why a database of its own rather than a file or Tradeflow's database: a
processor's books must survive its restarts (the "down" fault stops its API
and tests then check what it holds), its idempotency keys need the same
atomicity a real processor gives them (the stored response is written in the
transaction that makes the charge), and keeping it out of Tradeflow's
database means Tradeflow can learn a charge's fate only the honest way — by
asking the processor's API. On the embedded set-up it lives as another
database on the same private PostgreSQL server, so nothing else is needed.

The schema is created on start (`CREATE … IF NOT EXISTS`); it is a test
double's storage, not a Tradeflow schema, so it has no migrations.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tradeflow.db import async_url
from tradeflow.sandbox.schema import SCHEMA
from tradeflow.sandbox.schemas import Faults


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server behind `server_url` if missing; return its URL."""
    url = make_url(server_url)
    host = url.query.get("host", url.host) if url.query else url.host
    with psycopg.connect(
        dbname=url.database or "postgres",
        user=url.username,
        password=url.password,
        host=host if isinstance(host, str) else None,
        port=url.port,
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Another process may win the race to create it.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    webhook_url: str | None
    webhook_secret: str
    faults: Faults
    fee_bps: int = 0
    fee_fixed: int = 0


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
        faults=Faults.model_validate(row.faults or {}),
        fee_bps=row.fee_bps,
        fee_fixed=row.fee_fixed,
    )


class Store:
    """Every query of the sandbox."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            async_url(url), pool_size=5, max_overflow=5, pool_pre_ping=True
        )

    async def init(self) -> None:
        async with self.engine.begin() as conn:
            # Concurrent starts on one database (several test workers) must not race the DDL.
            await conn.execute(text("SELECT pg_advisory_xact_lock(74650099)"))
            for statement in SCHEMA:
                await conn.execute(text(statement))

    async def dispose(self) -> None:
        await self.engine.dispose()

    # -- accounts ---------------------------------------------------------------------------
    async def create_account(self, name: str, webhook_url: str | None) -> dict[str, Any]:
        account_id = new_id("acct")
        api_key = f"sk_sandbox_{secrets.token_urlsafe(24)}"
        webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        async with self.engine.begin() as conn:
            fees = await conn.execute(
                text(
                    "INSERT INTO sandbox_accounts (id, name, api_key_hash, webhook_url, "
                    "webhook_secret) VALUES (:id, :name, :h, :url, :secret) "
                    "RETURNING fee_bps, fee_fixed"
                ),
                {
                    "id": account_id,
                    "name": name,
                    "h": hash_key(api_key),
                    "url": webhook_url,
                    "secret": webhook_secret,
                },
            )
            fee_bps, fee_fixed = fees.one()
        return {
            "id": account_id,
            "name": name,
            "api_key": api_key,
            "webhook_secret": webhook_secret,
            "webhook_url": webhook_url,
            "fee_bps": fee_bps,
            "fee_fixed_minor": fee_fixed,
        }

    async def account(self, account_id: str) -> Account | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM sandbox_accounts WHERE id = :id"), {"id": account_id}
                )
            ).one_or_none()
        return _account(row) if row is not None else None

    async def account_by_key(self, api_key: str) -> Account | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM sandbox_accounts WHERE api_key_hash = :h"),
                    {"h": hash_key(api_key)},
                )
            ).one_or_none()
        return _account(row) if row is not None else None

    async def set_faults(self, account_id: str, faults: Faults) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text("UPDATE sandbox_accounts SET faults = CAST(:f AS jsonb) WHERE id = :id"),
                {"id": account_id, "f": faults.model_dump_json()},
            )
        return bool(result.rowcount)

    async def set_webhook_url(self, account_id: str, url: str | None) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text("UPDATE sandbox_accounts SET webhook_url = :u WHERE id = :id"),
                {"id": account_id, "u": url},
            )
            if url is not None:  # events waiting for an endpoint can go now
                await conn.execute(
                    text(
                        "UPDATE sandbox_webhook_events SET status = 'pending', "
                        "next_attempt_at = now() "
                        "WHERE account_id = :id AND status = 'no_endpoint'"
                    ),
                    {"id": account_id},
                )
        return bool(result.rowcount)

    # -- idempotency ------------------------------------------------------------------------
    async def idempotent(
        self,
        account_id: str,
        key: str,
        fingerprint: str,
        operation: Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """Run `operation` once per (account, key); later calls get the stored response.

        Returns (status, body, replayed). A key reused with a different request → 422.
        The stored response commits with the operation's own writes, so a crash leaves
        either both or neither.
        """
        async with self.engine.begin() as conn:
            # A blocking lock: a concurrent retry waits for the first and then replays it.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7465))"),
                {"k": f"{account_id}|{key}"},
            )
            row = (
                await conn.execute(
                    text(
                        "SELECT fingerprint, status_code, body FROM sandbox_idempotency "
                        "WHERE account_id = :a AND key = :k"
                    ),
                    {"a": account_id, "k": key},
                )
            ).one_or_none()
            if row is not None:
                if row.fingerprint != fingerprint:
                    return (
                        422,
                        error_body(
                            "idempotency_error",
                            "idempotency_key_reused",
                            "This Idempotency-Key was used with a different request.",
                        ),
                        False,
                    )
                return int(row.status_code), dict(row.body), True
            status, body = await operation(conn)
            await conn.execute(
                text(
                    "INSERT INTO sandbox_idempotency (account_id, key, fingerprint, status_code, "
                    "body) VALUES (:a, :k, :f, :s, CAST(:b AS jsonb))"
                ),
                {"a": account_id, "k": key, "f": fingerprint, "s": status, "b": json.dumps(body)},
            )
        return status, body, False

    # -- charges ----------------------------------------------------------------------------
    async def charge_view(self, conn: AsyncConnection, charge_id: str) -> dict[str, Any]:
        row = (
            await conn.execute(
                text("SELECT * FROM sandbox_charges WHERE id = :id"), {"id": charge_id}
            )
        ).one()
        captures = (
            await conn.execute(
                text(
                    "SELECT id, amount, fee, reference, created_at FROM sandbox_captures "
                    "WHERE charge_id = :id ORDER BY created_at, id"
                ),
                {"id": charge_id},
            )
        ).all()
        return {
            "id": row.id,
            "object": "charge",
            "account": row.account_id,
            "amount": row.amount,
            "currency": row.currency,
            "amount_captured": row.amount_captured,
            "amount_refunded": row.amount_refunded,
            "status": row.status,
            "payment_method": row.payment_method,
            "reference": row.reference,
            "description": row.description,
            "failure_code": row.failure_code,
            "failure_message": row.failure_message,
            "captures": [
                {
                    "id": c.id,
                    "amount": c.amount,
                    "fee": c.fee,
                    "reference": c.reference,
                    "created": _iso(c.created_at),
                }
                for c in captures
            ],
            "amount_fee": sum(c.fee for c in captures),
            "version": row.version,
            "created": _iso(row.created_at),
            "updated": _iso(row.updated_at),
        }

    async def refund_view(self, conn: AsyncConnection, refund_id: str) -> dict[str, Any]:
        row = (
            await conn.execute(
                text("SELECT * FROM sandbox_refunds WHERE id = :id"), {"id": refund_id}
            )
        ).one()
        return {
            "id": row.id,
            "object": "refund",
            "account": row.account_id,
            "charge": row.charge_id,
            "amount": row.amount,
            "currency": row.currency,
            "status": row.status,
            "reason": row.reason,
            "reference": row.reference,
            "failure_code": row.failure_code,
            "version": row.version,
            "created": _iso(row.created_at),
            "updated": _iso(row.updated_at),
        }

    async def insert_charge(self, conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(
            text(
                "INSERT INTO sandbox_charges (id, account_id, amount, currency, amount_captured, "
                "status, payment_method, reference, description, failure_code, failure_message) "
                "VALUES (:id, :account_id, :amount, :currency, :amount_captured, :status, "
                ":payment_method, :reference, :description, :failure_code, :failure_message)"
            ),
            values,
        )

    async def insert_capture(
        self,
        conn: AsyncConnection,
        account: Account,
        charge_id: str,
        amount: int,
        currency: str,
        reference: str | None,
    ) -> None:
        """A capture, its fee, and its balance transaction."""
        from tradeflow.sandbox import balance

        capture_id = new_id("cap")
        fee = balance.capture_fee(amount, bps=account.fee_bps, fixed=account.fee_fixed)
        await conn.execute(
            text(
                "INSERT INTO sandbox_captures (id, charge_id, amount, fee, reference) "
                "VALUES (:id, :c, :a, :fee, :r)"
            ),
            {"id": capture_id, "c": charge_id, "a": amount, "fee": fee, "r": reference},
        )
        await balance.record(
            conn,
            account_id=account.id,
            kind="capture",
            charge_id=charge_id,
            source_id=capture_id,
            amount=amount,
            fee=fee,
            currency=currency,
        )

    async def lock_charge(self, conn: AsyncConnection, account_id: str, charge_id: str) -> Any:
        return (
            await conn.execute(
                text("SELECT * FROM sandbox_charges WHERE id = :id AND account_id = :a FOR UPDATE"),
                {"id": charge_id, "a": account_id},
            )
        ).one_or_none()

    async def update_charge(self, conn: AsyncConnection, charge_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        await conn.execute(
            text(
                f"UPDATE sandbox_charges SET {sets}, version = version + 1, updated_at = now() "  # noqa: S608 — column names are ours
                "WHERE id = :id"
            ),
            {"id": charge_id, **values},
        )

    async def insert_refund(self, conn: AsyncConnection, **values: Any) -> None:
        """A refund and (when it succeeded) its balance transaction; refunds carry no fee."""
        from tradeflow.sandbox import balance

        await conn.execute(
            text(
                "INSERT INTO sandbox_refunds (id, account_id, charge_id, amount, currency, status, "
                "reason, reference) VALUES (:id, :account_id, :charge_id, :amount, :currency, "
                ":status, :reason, :reference)"
            ),
            values,
        )
        if values["status"] == "succeeded":
            await balance.record(
                conn,
                account_id=values["account_id"],
                kind="refund",
                charge_id=values["charge_id"],
                source_id=values["id"],
                amount=values["amount"],
                fee=0,
                currency=values["currency"],
            )

    async def find(
        self, table: str, account_id: str, *, object_id: str | None, reference: str | None
    ) -> list[dict[str, Any]]:
        assert table in ("sandbox_charges", "sandbox_refunds")
        clauses = ["account_id = :a"]
        params: dict[str, Any] = {"a": account_id}
        if object_id is not None:
            clauses.append("id = :id")
            params["id"] = object_id
        if reference is not None:
            clauses.append("reference = :r")
            params["r"] = reference
        async with self.engine.connect() as conn:
            ids = (
                await conn.execute(
                    text(
                        f"SELECT id FROM {table} WHERE {' AND '.join(clauses)} "  # noqa: S608 — fixed names
                        "ORDER BY created_at DESC, id LIMIT 100"
                    ),
                    params,
                )
            ).scalars()
            view = self.charge_view if table == "sandbox_charges" else self.refund_view
            return [await view(conn, i) for i in list(ids)]

    # -- webhooks ---------------------------------------------------------------------------
    async def emit(
        self, conn: AsyncConnection, account: Account, event_type: str, obj: dict[str, Any]
    ) -> str:
        """Queue a webhook event carrying a snapshot of `obj` as it is now."""
        event_id = new_id("evt")
        mode = account.faults.webhooks
        status = {"off": "suppressed", "hold": "held"}.get(mode, "pending")
        if status == "pending" and not account.webhook_url:
            status = "no_endpoint"
        payload = {
            "id": event_id,
            "type": event_type,
            "account": account.id,
            "created": obj.get("updated") or obj.get("created"),
            "data": {"object": obj},
        }
        await conn.execute(
            text(
                "INSERT INTO sandbox_webhook_events "
                "(id, account_id, type, payload, status, copies) "
                "VALUES (:id, :a, :t, CAST(:p AS jsonb), :s, :c)"
            ),
            {
                "id": event_id,
                "a": account.id,
                "t": event_type,
                "p": json.dumps(payload),
                "s": status,
                "c": 2 if mode == "duplicate" else 1,
            },
        )
        await conn.execute(
            text("UPDATE sandbox_webhook_events SET send_order = seq WHERE id = :id"),
            {"id": event_id},
        )
        return event_id

    async def due_webhooks(self, limit: int = 20) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        text(
                            "SELECT e.id, e.payload, e.copies, e.attempts, a.webhook_url, "
                            "a.webhook_secret, a.faults FROM sandbox_webhook_events e "
                            "JOIN sandbox_accounts a ON a.id = e.account_id "
                            "WHERE e.status = 'pending' AND e.next_attempt_at <= now() "
                            "ORDER BY e.send_order, e.seq LIMIT :n"
                        ),
                        {"n": limit},
                    )
                ).all()
            )

    async def record_attempt(
        self,
        event_id: str,
        *,
        ok: bool,
        status_code: int | None,
        error: str | None,
        retry_in_seconds: float | None,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO sandbox_webhook_attempts (event_id, status_code, error) "
                    "VALUES (:e, :s, :err)"
                ),
                {"e": event_id, "s": status_code, "err": error},
            )
            if ok:
                await conn.execute(
                    text(
                        "UPDATE sandbox_webhook_events SET attempts = attempts + 1, "
                        "copies = copies - 1, last_status = :s, last_error = NULL, "
                        "status = CASE WHEN copies - 1 <= 0 THEN 'delivered' ELSE status END, "
                        "delivered_at = now() WHERE id = :e"
                    ),
                    {"e": event_id, "s": status_code},
                )
            else:
                await conn.execute(
                    text(
                        "UPDATE sandbox_webhook_events SET attempts = attempts + 1, "
                        "last_status = :s, last_error = :err, "
                        "status = CASE WHEN CAST(:retry AS double precision) IS NULL "
                        "THEN 'failed' ELSE status END, "
                        "next_attempt_at = now() + make_interval(secs => "
                        "COALESCE(CAST(:retry AS double precision), 0)) WHERE id = :e"
                    ),
                    {"e": event_id, "s": status_code, "err": error, "retry": retry_in_seconds},
                )

    async def flush_held(self, account_id: str, order: str) -> int:
        async with self.engine.begin() as conn:
            sign = "-" if order == "reverse" else ""
            result = await conn.execute(
                text(
                    f"UPDATE sandbox_webhook_events SET status = 'pending', "  # noqa: S608 — sign is fixed
                    f"send_order = {sign}seq, next_attempt_at = now() "
                    "WHERE account_id = :a AND status = 'held'"
                ),
                {"a": account_id},
            )
        return int(result.rowcount or 0)

    async def list_webhooks(self, account_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT e.*, COALESCE(("
                        "  SELECT json_agg(json_build_object('status_code', t.status_code, "
                        "  'error', t.error) ORDER BY t.id) FROM sandbox_webhook_attempts t "
                        "  WHERE t.event_id = e.id), '[]') AS attempt_log "
                        "FROM sandbox_webhook_events e WHERE e.account_id = :a ORDER BY e.seq"
                    ),
                    {"a": account_id},
                )
            ).all()
        return [
            {
                "id": r.id,
                "type": r.type,
                "status": r.status,
                "attempts": r.attempts,
                "copies_left": r.copies,
                "last_status": r.last_status,
                "last_error": r.last_error,
                "attempt_log": r.attempt_log,
                "payload": r.payload,
            }
            for r in rows
        ]

    async def account_objects(self, table: str, account_id: str) -> list[dict[str, Any]]:
        return await self.find(table, account_id, object_id=None, reference=None)


def error_body(kind: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message, **extra}}
