"""Plain factories for payments tests: a connected sandbox account, invoices to pay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response

from orders.factories import World, act, order_body, place
from tradeflow.sandbox.control import SandboxControl
from tradeflow.sandbox.process import SandboxProcess


@dataclass
class Merchant:
    world: World
    account: dict[str, Any]
    control: SandboxControl

    @property
    def account_id(self) -> str:
        return str(self.account["id"])

    async def charges(self) -> list[dict[str, Any]]:
        return await self.control.charges(self.account_id)


def sandbox_config(
    sandbox: SandboxProcess, account: dict[str, Any], *, timeout: float = 2.0
) -> dict[str, Any]:
    return {
        "base_url": sandbox.api_url,
        "account_id": account["id"],
        "api_key": account["api_key"],
        "webhook_secret": account["webhook_secret"],
        "timeout_seconds": timeout,
    }


async def connect_sandbox(
    client: AsyncClient,
    world: World,
    sandbox: SandboxProcess,
    control: SandboxControl,
    *,
    webhook_url: str | None = None,
    timeout: float = 2.0,
) -> Merchant:
    account = await control.create_account(webhook_url=webhook_url)
    r = await client.put(
        "/v1/processors/sandbox",
        json={"config": sandbox_config(sandbox, account, timeout=timeout)},
        headers=world.staff,
    )
    assert r.status_code == 200, r.text
    return Merchant(world, account, control)


async def invoiced_order(
    client: AsyncClient, world: World, *lines: tuple[str, int]
) -> dict[str, Any]:
    """A confirmed order with its invoice; one BOLT-1 is 1000 + 20 % tax = 1200."""
    order = await place(client, world, order_body(world, *(lines or (("BOLT-1", 1),))))
    assert order.status_code == 201, order.text
    r = await act(client, order, "confirm", headers=world.staff)
    assert r.status_code == 200, r.text
    confirmed: dict[str, Any] = r.json()
    assert confirmed["invoice_id"], confirmed
    return confirmed


async def pay(
    client: AsyncClient,
    world: World,
    invoice_id: str,
    *,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    **body: Any,
) -> Response:
    payload = {"invoice_id": invoice_id, "payment_method": "pm_sandbox_ok", **body}
    return await client.post(
        "/v1/payments",
        json=payload,
        headers={**(headers or world.staff), "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def authorized_behind_slow_processor(
    client: AsyncClient, world: World, sandbox: SandboxProcess, control: SandboxControl
) -> tuple[Merchant, dict[str, Any]]:
    """A manual-capture payment, authorised; from then on the sandbox answers after our
    0.5 s timeout (it still commits what it is asked)."""
    merchant = await connect_sandbox(client, world, sandbox, control, timeout=0.5)
    order = await invoiced_order(client, world)
    payment: dict[str, Any] = (
        await pay(client, world, order["invoice_id"], capture_method="manual")
    ).json()
    await control.set_faults(merchant.account_id, delay_after_commit_seconds=2)
    return merchant, payment
