"""Running the sandbox: the API listener, the control listener and the webhook sender.

The API listener can be stopped and started again on the same port (the
"down" fault): while it is down, callers get *connection refused* — the one
failure a caller can be sure charged nothing. The control listener stays up
throughout, so a test can bring the API back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tradeflow.sandbox import balance
from tradeflow.sandbox.api import create_api
from tradeflow.sandbox.schemas import (
    AccountIn,
    AccountPatch,
    DirectChargeIn,
    DirectRefundIn,
    Faults,
    FlushIn,
)
from tradeflow.sandbox.store import Store, new_id
from tradeflow.sandbox.webhooks import WebhookSender

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever runs the sandbox."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@dataclass
class _Listener:
    server: _Server
    task: asyncio.Task[None]


class SandboxServer:
    """One sandbox processor process (or task inside `tradeflow up --demo`)."""

    def __init__(
        self,
        database_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.control_port = control_port
        self.store = Store(database_url)
        self.sender = WebhookSender(self.store)
        self.api_app = create_api(self.store, on_event=self.sender.wake)
        self.control_app = self._control_app()
        self._api: _Listener | None = None
        self._control: _Listener | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    @property
    def is_down(self) -> bool:
        return self._api is None

    async def _listen(self, app: Starlette, port: int) -> tuple[_Listener, int]:
        sock = _bind(self.host, port)
        bound = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
                raise RuntimeError(f"sandbox listener on {self.host}:{bound} stopped at start")
            await asyncio.sleep(0.01)
        return _Listener(server, task), bound

    async def _close(self, listener: _Listener) -> None:
        listener.server.should_exit = True
        await listener.task

    async def bring_up(self) -> None:
        if self._api is None:
            self._api, self.port = await self._listen(self.api_app, self.port)
            self.sender.paused = False
            self.sender.wake()
            log.info("sandbox_api_up", url=self.api_url)

    async def take_down(self) -> None:
        """Close the API listener; webhooks stop too, as they would at a processor outage."""
        if self._api is not None:
            listener, self._api = self._api, None
            self.sender.paused = True
            await self._close(listener)
            log.info("sandbox_api_down", url=self.api_url)

    async def start(self) -> None:
        await self.store.init()
        await self.bring_up()
        self._control, self.control_port = await self._listen(self.control_app, self.control_port)
        log.info("sandbox_started", api=self.api_url, control=self.control_url)

    async def stop(self) -> None:
        await self.take_down()
        if self._control is not None:
            listener, self._control = self._control, None
            await self._close(listener)
        await self.store.dispose()

    async def run(self, stop: asyncio.Event, *, ready_file: Path | None = None) -> None:
        """Serve until `stop` is set."""
        await self.start()
        sender = asyncio.create_task(self.sender.run(stop))
        try:
            if ready_file is not None:
                tmp = ready_file.with_suffix(".tmp")
                tmp.write_text(
                    json.dumps({"api_url": self.api_url, "control_url": self.control_url})
                )
                tmp.replace(ready_file)
            await stop.wait()
        finally:
            stop.set()
            await sender
            await self.stop()

    # -- the control plane ----------------------------------------------------------------------
    def _control_app(self) -> Starlette:
        store = self.store

        async def parse(request: Request, model: type[BaseModel]) -> Any:
            try:
                return model.model_validate_json(await request.body() or b"{}")
            except ValidationError as exc:
                raise _Bad(
                    400,
                    {
                        "error": "invalid request",
                        "detail": exc.errors(include_url=False, include_context=False),
                    },
                ) from exc

        async def account_or_404(request: Request) -> str:
            account_id = str(request.path_params["account_id"])
            if await store.account(account_id) is None:
                raise _Bad(404, {"error": f"no account {account_id}"})
            return account_id

        async def status(_: Request) -> JSONResponse:
            return JSONResponse(
                {"api_url": self.api_url, "control_url": self.control_url, "down": self.is_down}
            )

        async def create_account(request: Request) -> JSONResponse:
            body: AccountIn = await parse(request, AccountIn)
            return JSONResponse(
                await store.create_account(body.name, body.webhook_url), status_code=201
            )

        async def patch_account(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            body: AccountPatch = await parse(request, AccountPatch)
            sent = body.model_fields_set
            if "webhook_url" in sent:
                await store.set_webhook_url(account_id, body.webhook_url)
                self.sender.wake()
            if sent & {"fee_bps", "fee_fixed_minor"}:
                account = await store.account(account_id)
                assert account is not None
                async with store.engine.begin() as conn:
                    await balance.set_fees(
                        conn,
                        account_id,
                        bps=account.fee_bps if body.fee_bps is None else body.fee_bps,
                        fixed=account.fee_fixed
                        if body.fee_fixed_minor is None
                        else body.fee_fixed_minor,
                    )
            account = await store.account(account_id)
            assert account is not None
            return JSONResponse(
                {
                    "id": account_id,
                    "webhook_url": account.webhook_url,
                    "fee_bps": account.fee_bps,
                    "fee_fixed_minor": account.fee_fixed,
                }
            )

        async def direct_charge(request: Request) -> JSONResponse:
            """A captured charge Tradeflow never asked for and hears nothing about (no
            webhook): what reconciliation against the processor's books must notice."""
            account = await store.account(await account_or_404(request))
            assert account is not None
            body: DirectChargeIn = await parse(request, DirectChargeIn)
            charge_id = new_id("ch")
            async with store.engine.begin() as conn:
                await store.insert_charge(
                    conn,
                    id=charge_id,
                    account_id=account.id,
                    amount=body.amount,
                    currency=body.currency,
                    amount_captured=body.amount,
                    status="captured",
                    payment_method="pm_sandbox_ok",
                    reference=body.reference,
                    description="created through the control plane",
                    failure_code=None,
                    failure_message=None,
                )
                await store.insert_capture(
                    conn, account, charge_id, body.amount, body.currency, body.reference
                )
                view = await store.charge_view(conn, charge_id)
            return JSONResponse(view, status_code=201)

        async def direct_refund(request: Request) -> JSONResponse:
            """A refund made at the processor (its dashboard), not through Tradeflow's call:
            unlike a direct charge it is announced by the usual `refund.succeeded` webhook,
            with no reference of Tradeflow's."""
            account = await store.account(await account_or_404(request))
            assert account is not None
            body: DirectRefundIn = await parse(request, DirectRefundIn)
            async with store.engine.begin() as conn:
                row = await store.lock_charge(conn, account.id, body.charge)
                if row is None:
                    raise _Bad(404, {"error": f"No charge {body.charge}."})
                refundable = row.amount_captured - row.amount_refunded
                amount = body.amount if body.amount is not None else refundable
                if amount <= 0 or amount > refundable:
                    raise _Bad(400, {"error": f"At most {refundable} can be refunded."})
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
                    reference=None,
                )
                await store.update_charge(
                    conn, row.id, amount_refunded=row.amount_refunded + amount
                )
                view = await store.refund_view(conn, refund_id)
                await store.emit(conn, account, "refund.succeeded", view)
            return JSONResponse(view, status_code=201)

        async def put_faults(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            faults: Faults = await parse(request, Faults)
            await store.set_faults(account_id, faults)
            return JSONResponse(faults.model_dump())

        async def get_faults(request: Request) -> JSONResponse:
            account = await store.account(await account_or_404(request))
            assert account is not None
            return JSONResponse(account.faults.model_dump())

        async def charges(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            return JSONResponse(
                {"data": await store.account_objects("sandbox_charges", account_id)}
            )

        async def refunds(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            return JSONResponse(
                {"data": await store.account_objects("sandbox_refunds", account_id)}
            )

        async def webhooks(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            return JSONResponse({"data": await store.list_webhooks(account_id)})

        async def flush(request: Request) -> JSONResponse:
            account_id = await account_or_404(request)
            body: FlushIn = await parse(request, FlushIn)
            released = await store.flush_held(account_id, body.order)
            self.sender.wake()
            return JSONResponse({"released": released, "order": body.order})

        async def down(_: Request) -> JSONResponse:
            await self.take_down()
            return JSONResponse({"down": True})

        async def up(_: Request) -> JSONResponse:
            await self.bring_up()
            return JSONResponse({"down": False, "api_url": self.api_url})

        async def bad(_: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, _Bad)
            return JSONResponse(exc.body, status_code=exc.status)

        return Starlette(
            routes=[
                Route("/healthz", status, methods=["GET"]),
                Route("/status", status, methods=["GET"]),
                Route("/accounts", create_account, methods=["POST"]),
                Route("/accounts/{account_id}", patch_account, methods=["PATCH"]),
                Route("/accounts/{account_id}/faults", put_faults, methods=["PUT"]),
                Route("/accounts/{account_id}/faults", get_faults, methods=["GET"]),
                Route("/accounts/{account_id}/charges", charges, methods=["GET"]),
                Route("/accounts/{account_id}/charges", direct_charge, methods=["POST"]),
                Route("/accounts/{account_id}/refunds", refunds, methods=["GET"]),
                Route("/accounts/{account_id}/refunds", direct_refund, methods=["POST"]),
                Route("/accounts/{account_id}/webhooks", webhooks, methods=["GET"]),
                Route("/accounts/{account_id}/webhooks/flush", flush, methods=["POST"]),
                Route("/down", down, methods=["POST"]),
                Route("/up", up, methods=["POST"]),
            ],
            exception_handlers={_Bad: bad},
        )


class _Bad(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
