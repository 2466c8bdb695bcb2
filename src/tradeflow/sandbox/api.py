"""The sandbox processor's public API — what a processor plugin calls.

Stripe-shaped on purpose (charges with manual or automatic capture, partial
captures, refunds, `Idempotency-Key` on every POST, objects carrying a
`version` that grows with every change), so the plugin exercises the same
paths a real adapter would.

    POST /v1/charges                  {amount, currency, payment_method, capture, reference}
    GET  /v1/charges?reference=…      look a charge up by the caller's reference
    GET  /v1/charges/{id}
    POST /v1/charges/{id}/captures    {amount?, reference?}
    POST /v1/charges/{id}/void        {reference?}  cancel an uncaptured authorisation
    POST /v1/refunds                  {charge, amount?, reference?, reason?}
    GET  /v1/refunds?reference=…  ·  GET /v1/refunds/{id}
    GET  /v1/balance_transactions?created_gte=&starting_after=&limit=
                                      captures and refunds with their fees, oldest first

Errors: `{"error": {"type", "code", "message"}}` with 400/401/402/404/409/422.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tradeflow.sandbox import balance
from tradeflow.sandbox.schemas import (
    DECLINE_MESSAGES,
    PAYMENT_METHODS,
    CaptureIn,
    ChargeIn,
    RefundIn,
    VoidIn,
)
from tradeflow.sandbox.store import Account, Store, error_body, new_id

M = TypeVar("M", bound=BaseModel)


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


def _fingerprint(request: Request, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + canonical).hexdigest()


def _parse(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise _Reject(
            400,
            error_body(
                "invalid_request_error", "invalid_request", "The request is invalid.", fields=fields
            ),
        ) from exc


def create_api(store: Store, *, on_event: Callable[[], None]) -> Starlette:
    """The API app; `on_event` wakes the webhook sender after a commit queued an event."""

    async def authenticate(request: Request) -> Account:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        account = await store.account_by_key(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            raise _Reject(
                401,
                error_body("authentication_error", "invalid_api_key", "No valid API key given."),
            )
        return account

    async def mutate(
        request: Request,
        account: Account,
        operation: Callable[[AsyncConnection], Any],
    ) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if not key or len(key) > 255:
            raise _Reject(
                400,
                error_body(
                    "invalid_request_error",
                    "idempotency_key_required",
                    "Every POST needs an Idempotency-Key header (1–255 characters).",
                ),
            )
        raw = await request.body()
        status, body, replayed = await store.idempotent(
            account.id, key, _fingerprint(request, raw), operation
        )
        if not replayed:
            on_event()
            delay = account.faults.delay_after_commit_seconds
            if delay and status < 400:
                # The change is committed; the caller simply hears nothing for a while.
                await asyncio.sleep(delay)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(body, status_code=status, headers=headers)

    async def create_charge(request: Request) -> JSONResponse:
        account = await authenticate(request)
        body = _parse(ChargeIn, await request.body())

        async def operation(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
            if body.payment_method not in PAYMENT_METHODS:
                return 400, error_body(
                    "invalid_request_error",
                    "payment_method_unknown",
                    f"Unknown payment method {body.payment_method!r}; use one of "
                    f"{', '.join(sorted(PAYMENT_METHODS))}.",
                )
            decline = account.faults.decline_code or PAYMENT_METHODS[body.payment_method]
            charge_id = new_id("ch")
            captured = body.amount if body.capture and decline is None else 0
            if decline is not None:
                status = "failed"
            elif body.capture:
                status = "captured"
            else:
                status = "requires_capture"
            await store.insert_charge(
                conn,
                id=charge_id,
                account_id=account.id,
                amount=body.amount,
                currency=body.currency,
                amount_captured=captured,
                status=status,
                payment_method=body.payment_method,
                reference=body.reference,
                description=body.description,
                failure_code=decline,
                failure_message=DECLINE_MESSAGES.get(decline or "", "The payment was declined.")
                if decline
                else None,
            )
            if captured:
                await store.insert_capture(
                    conn, account, charge_id, captured, body.currency, body.reference
                )
            view = await store.charge_view(conn, charge_id)
            event = {
                "failed": "charge.failed",
                "captured": "charge.captured",
                "requires_capture": "charge.authorized",
            }[status]
            await store.emit(conn, account, event, view)
            if decline is not None:
                message = view["failure_message"]
                return 402, error_body("card_error", decline, message, charge=view)
            return 201, view

        return await mutate(request, account, operation)

    async def capture_charge(request: Request) -> JSONResponse:
        account = await authenticate(request)
        body = _parse(CaptureIn, await request.body())
        charge_id = request.path_params["charge_id"]

        async def operation(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
            row = await store.lock_charge(conn, account.id, charge_id)
            if row is None:
                return 404, error_body(
                    "invalid_request_error", "resource_missing", f"No charge {charge_id}."
                )
            if row.status not in ("requires_capture", "partially_captured"):
                return 409, error_body(
                    "invalid_request_error",
                    "charge_not_capturable",
                    f"The charge is {row.status}; only authorised charges can be captured.",
                )
            remaining = row.amount - row.amount_captured
            amount = body.amount if body.amount is not None else remaining
            if amount > remaining:
                return 400, error_body(
                    "invalid_request_error",
                    "amount_too_large",
                    f"At most {remaining} can still be captured.",
                )
            total = row.amount_captured + amount
            await store.update_charge(
                conn,
                charge_id,
                amount_captured=total,
                status="captured" if total == row.amount else "partially_captured",
            )
            await store.insert_capture(
                conn, account, charge_id, amount, row.currency, body.reference
            )
            view = await store.charge_view(conn, charge_id)
            await store.emit(conn, account, "charge.captured", view)
            return 200, view

        return await mutate(request, account, operation)

    async def create_refund(request: Request) -> JSONResponse:
        account = await authenticate(request)
        body = _parse(RefundIn, await request.body())

        async def operation(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
            row = await store.lock_charge(conn, account.id, body.charge)
            if row is None:
                return 404, error_body(
                    "invalid_request_error", "resource_missing", f"No charge {body.charge}."
                )
            refundable = row.amount_captured - row.amount_refunded
            amount = body.amount if body.amount is not None else refundable
            if amount <= 0 or amount > refundable:
                return 400, error_body(
                    "invalid_request_error",
                    "amount_too_large",
                    f"At most {refundable} of this charge can be refunded.",
                )
            refund_id = new_id("re")
            await store.insert_refund(
                conn,
                id=refund_id,
                account_id=account.id,
                charge_id=row.id,
                amount=amount,
                currency=row.currency,
                status="succeeded",
                reason=body.reason,
                reference=body.reference,
            )
            await store.update_charge(conn, row.id, amount_refunded=row.amount_refunded + amount)
            view = await store.refund_view(conn, refund_id)
            await store.emit(conn, account, "refund.succeeded", view)
            return 201, view

        return await mutate(request, account, operation)

    async def void_charge(request: Request) -> JSONResponse:
        account = await authenticate(request)
        _parse(VoidIn, await request.body())
        charge_id = request.path_params["charge_id"]

        async def operation(conn: AsyncConnection) -> tuple[int, dict[str, Any]]:
            row = await store.lock_charge(conn, account.id, charge_id)
            if row is None:
                return 404, error_body(
                    "invalid_request_error", "resource_missing", f"No charge {charge_id}."
                )
            if row.status == "canceled":  # already void: say so again, change nothing
                return 200, await store.charge_view(conn, charge_id)
            if row.status != "requires_capture":
                return 409, error_body(
                    "invalid_request_error",
                    "charge_not_cancelable",
                    f"The charge is {row.status}; only an authorisation nothing was captured "
                    "from can be voided.",
                )
            await store.update_charge(conn, charge_id, status="canceled")
            view = await store.charge_view(conn, charge_id)
            await store.emit(conn, account, "charge.canceled", view)
            return 200, view

        return await mutate(request, account, operation)

    async def balance_transactions(request: Request) -> JSONResponse:
        account = await authenticate(request)
        query = request.query_params
        try:
            since = datetime.fromisoformat(query["created_gte"]) if "created_gte" in query else None
            limit = int(query.get("limit", "100"))
        except ValueError as exc:
            raise _Reject(
                400,
                error_body("invalid_request_error", "invalid_request", f"Bad query: {exc}"),
            ) from exc
        if not 1 <= limit <= 500:
            raise _Reject(
                400,
                error_body("invalid_request_error", "invalid_request", "limit is 1 to 500."),
            )
        async with store.engine.connect() as conn:
            data, more = await balance.list_transactions(
                conn,
                account.id,
                since=since,
                starting_after=query.get("starting_after"),
                limit=limit,
            )
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    def lister(table: str) -> Callable[[Request], Any]:
        async def list_objects(request: Request) -> JSONResponse:
            account = await authenticate(request)
            data = await store.find(
                table, account.id, object_id=None, reference=request.query_params.get("reference")
            )
            return JSONResponse({"object": "list", "data": data})

        return list_objects

    def getter(table: str, what: str) -> Callable[[Request], Any]:
        async def get_object(request: Request) -> JSONResponse:
            account = await authenticate(request)
            object_id = request.path_params["object_id"]
            found = await store.find(table, account.id, object_id=object_id, reference=None)
            if not found:
                raise _Reject(
                    404,
                    error_body(
                        "invalid_request_error", "resource_missing", f"No {what} {object_id}."
                    ),
                )
            return JSONResponse(found[0])

        return get_object

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def rejected(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _Reject)
        return JSONResponse(exc.body, status_code=exc.status)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/charges", create_charge, methods=["POST"]),
            Route("/v1/charges", lister("sandbox_charges"), methods=["GET"]),
            Route("/v1/charges/{object_id}", getter("sandbox_charges", "charge"), methods=["GET"]),
            Route("/v1/charges/{charge_id}/captures", capture_charge, methods=["POST"]),
            Route("/v1/charges/{charge_id}/void", void_charge, methods=["POST"]),
            Route("/v1/balance_transactions", balance_transactions, methods=["GET"]),
            Route("/v1/refunds", create_refund, methods=["POST"]),
            Route("/v1/refunds", lister("sandbox_refunds"), methods=["GET"]),
            Route("/v1/refunds/{object_id}", getter("sandbox_refunds", "refund"), methods=["GET"]),
        ],
        exception_handlers={_Reject: rejected},
    )
