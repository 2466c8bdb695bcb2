"""A client for the sandbox's control plane: accounts, faults, inspection, down/up.

Used by the tests, the demo seeder and `tradeflow sandbox …`; never by the
payments context itself, which only speaks the processor API through its
plugin.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from tradeflow.sandbox.schemas import Faults


class SandboxControl:
    def __init__(self, control_url: str, *, timeout: float = 10.0) -> None:
        self.control_url = control_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.control_url, timeout=timeout)

    async def __aenter__(self) -> SandboxControl:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._client.request(method, path, **kw)
        response.raise_for_status()
        return response.json()

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/status")
        return result

    async def create_account(
        self, *, name: str = "sandbox merchant", webhook_url: str | None = None
    ) -> dict[str, Any]:
        """A new merchant account: `id`, `api_key`, `webhook_secret` (both shown only here)."""
        result: dict[str, Any] = await self._call(
            "POST", "/accounts", json={"name": name, "webhook_url": webhook_url}
        )
        return result

    async def set_webhook_url(self, account_id: str, url: str | None) -> None:
        await self._call("PATCH", f"/accounts/{account_id}", json={"webhook_url": url})

    async def set_fees(
        self, account_id: str, *, bps: int | None = None, fixed_minor: int | None = None
    ) -> dict[str, Any]:
        """Change the account's fee per capture (basis points of the amount, plus fixed)."""
        body: dict[str, int] = {}
        if bps is not None:
            body["fee_bps"] = bps
        if fixed_minor is not None:
            body["fee_fixed_minor"] = fixed_minor
        result: dict[str, Any] = await self._call("PATCH", f"/accounts/{account_id}", json=body)
        return result

    async def charge_directly(
        self, account_id: str, *, amount: int, currency: str, reference: str | None = None
    ) -> dict[str, Any]:
        """Capture a charge at the processor behind Tradeflow's back (no call, no webhook)."""
        result: dict[str, Any] = await self._call(
            "POST",
            f"/accounts/{account_id}/charges",
            json={"amount": amount, "currency": currency, "reference": reference},
        )
        return result

    async def refund_directly(
        self, account_id: str, *, charge: str, amount: int | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Refund a charge at the processor behind Tradeflow's back (its webhook still follows)."""
        result: dict[str, Any] = await self._call(
            "POST",
            f"/accounts/{account_id}/refunds",
            json={"charge": charge, "amount": amount, "reason": reason},
        )
        return result

    async def set_faults(self, account_id: str, faults: Faults | None = None, **kw: Any) -> Faults:
        body = (faults or Faults(**kw)).model_dump()
        return Faults.model_validate(
            await self._call("PUT", f"/accounts/{account_id}/faults", json=body)
        )

    async def charges(self, account_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", f"/accounts/{account_id}/charges"))[
            "data"
        ]
        return result

    async def refunds(self, account_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", f"/accounts/{account_id}/refunds"))[
            "data"
        ]
        return result

    async def webhooks(self, account_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._call("GET", f"/accounts/{account_id}/webhooks")
        )["data"]
        return result

    async def flush(self, account_id: str, order: Literal["fifo", "reverse"] = "fifo") -> int:
        result = await self._call(
            "POST", f"/accounts/{account_id}/webhooks/flush", json={"order": order}
        )
        return int(result["released"])

    async def down(self) -> None:
        await self._call("POST", "/down")

    async def up(self) -> None:
        await self._call("POST", "/up")
