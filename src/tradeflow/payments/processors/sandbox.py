"""The processor plugin for the in-tree sandbox processor (`tradeflow.sandbox`).

It speaks the sandbox's HTTP API exactly as an adapter for a real processor
would speak theirs: bearer API key, our `Idempotency-Key` on every write,
error mapping that keeps "never sent" apart from "maybe applied", and
Standard Webhooks signature checks on what the sandbox sends back.
"""

from __future__ import annotations

import functools
import hmac
import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import certifi
import httpx
from pydantic import Field, SecretStr, field_validator
from standardwebhooks.webhooks import Webhook

from tradeflow.payments.processors.base import (
    AuthorizeRequest,
    Capture,
    ChargeState,
    Processor,
    ProcessorConfig,
    ProcessorEvent,
    ProcessorOutcomeUnknown,
    ProcessorRejected,
    ProcessorUnavailable,
    RefundState,
    SettlementItem,
    SettlementPage,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
    WebhookTimestampStale,
)

# The sandbox's error codes that point at one of our request fields.
_FIELD_OF_CODE = {
    "payment_method_unknown": "payment_method",
    "amount_too_large": "amount_minor",
}


class SandboxConfig(ProcessorConfig):
    base_url: str = Field(
        description="The sandbox API, e.g. http://127.0.0.1:8100.", max_length=500
    )
    account_id: str = Field(description="The sandbox merchant account (acct_…).", max_length=100)
    api_key: SecretStr = Field(description="The account's secret API key (sk_sandbox_…).")
    webhook_secret: SecretStr = Field(description="The account's webhook signing secret (whsec_…).")
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long to wait for an answer."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs more than a whole local payment; do it once per process.
    return ssl.create_default_context(cafile=certifi.where())


def _charge(obj: Mapping[str, Any]) -> ChargeState:
    return ChargeState(
        id=str(obj["id"]),
        reference=obj.get("reference"),
        status=obj["status"],
        amount_minor=int(obj["amount"]),
        currency=str(obj["currency"]),
        amount_captured_minor=int(obj.get("amount_captured", 0)),
        amount_refunded_minor=int(obj.get("amount_refunded", 0)),
        version=int(obj["version"]),
        failure_code=obj.get("failure_code"),
        failure_message=obj.get("failure_message"),
        captures=tuple(
            Capture(
                id=str(c["id"]),
                amount_minor=int(c["amount"]),
                reference=c.get("reference"),
                fee_minor=int(c.get("fee", 0)),
            )
            for c in obj.get("captures", [])
        ),
        fee_minor=int(obj.get("amount_fee", 0)),
    )


def _refund(obj: Mapping[str, Any]) -> RefundState:
    return RefundState(
        id=str(obj["id"]),
        reference=obj.get("reference"),
        payment_id=str(obj["charge"]),
        status=obj["status"],
        amount_minor=int(obj["amount"]),
        currency=str(obj["currency"]),
        version=int(obj["version"]),
        failure_code=obj.get("failure_code"),
    )


def _settlement(obj: Mapping[str, Any]) -> SettlementItem:
    return SettlementItem(
        id=str(obj["id"]),
        kind=obj["type"],
        charge_id=str(obj["charge"]),
        payment_reference=obj.get("charge_reference"),
        amount_minor=int(obj["amount"]),
        fee_minor=int(obj.get("fee", 0)),
        currency=str(obj["currency"]),
        created_at=datetime.fromisoformat(str(obj["created"])),
        source_id=str(obj["source"]),
    )


class SandboxProcessor(Processor):
    name: ClassVar[str] = "sandbox"
    title: ClassVar[str] = "Sandbox processor (in-tree, for demos and tests)"
    config_model: ClassVar[type[ProcessorConfig]] = SandboxConfig

    config: SandboxConfig

    def __init__(self, config: ProcessorConfig) -> None:
        assert isinstance(config, SandboxConfig)
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        # Made on first call: verifying a webhook needs the config but no connection.
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.config.base_url,
                timeout=self.config.timeout_seconds,
                verify=_tls_context(),
                headers={
                    "authorization": f"Bearer {self.config.api_key.get_secret_value()}",
                    "user-agent": "tradeflow",
                },
                follow_redirects=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- calls -------------------------------------------------------------------------------
    async def _send(
        self, method: str, path: str, *, idempotency_key: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        try:
            response = await self._client.request(method, path, headers=headers, **kw)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: the request cannot have been applied.
            raise ProcessorUnavailable(f"sandbox processor unreachable: {exc!r}") from exc
        except httpx.HTTPError as exc:
            # Sent (at least partly) but no complete answer: it may have been applied.
            raise ProcessorOutcomeUnknown(f"no answer from the sandbox processor: {exc!r}") from exc
        if response.status_code >= 500:
            raise ProcessorOutcomeUnknown(
                f"sandbox processor answered {response.status_code}",
                status_code=response.status_code,
            )
        return response

    def _rejected(self, response: httpx.Response) -> ProcessorRejected:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        code = error.get("code")
        message = error.get("message") or f"sandbox processor answered {response.status_code}"
        return ProcessorRejected(
            message,
            code=code,
            status_code=response.status_code,
            field=_FIELD_OF_CODE.get(code or ""),
        )

    async def authorize(self, request: AuthorizeRequest) -> ChargeState:
        response = await self._send(
            "POST",
            "/v1/charges",
            idempotency_key=request.idempotency_key,
            json={
                "amount": request.amount_minor,
                "currency": request.currency,
                "payment_method": request.payment_method,
                "capture": request.capture,
                "reference": request.reference,
                "description": request.description,
            },
        )
        if response.status_code == 402:  # declined: the charge exists, failed
            return _charge(response.json()["error"]["charge"])
        if response.status_code >= 400:
            raise self._rejected(response)
        return _charge(response.json())

    async def capture(
        self, charge_id: str, *, amount_minor: int, idempotency_key: str, reference: str
    ) -> ChargeState:
        response = await self._send(
            "POST",
            f"/v1/charges/{charge_id}/captures",
            idempotency_key=idempotency_key,
            json={"amount": amount_minor, "reference": reference},
        )
        if response.status_code >= 400:
            raise self._rejected(response)
        return _charge(response.json())

    async def refund(
        self,
        charge_id: str,
        *,
        amount_minor: int,
        idempotency_key: str,
        reference: str,
        reason: str | None,
    ) -> RefundState:
        response = await self._send(
            "POST",
            "/v1/refunds",
            idempotency_key=idempotency_key,
            json={
                "charge": charge_id,
                "amount": amount_minor,
                "reference": reference,
                "reason": reason,
            },
        )
        if response.status_code >= 400:
            raise self._rejected(response)
        return _refund(response.json())

    async def void(self, charge_id: str, *, idempotency_key: str, reference: str) -> ChargeState:
        response = await self._send(
            "POST",
            f"/v1/charges/{charge_id}/void",
            idempotency_key=idempotency_key,
            json={"reference": reference},
        )
        if response.status_code >= 400:
            raise self._rejected(response)
        return _charge(response.json())

    async def list_settlements(
        self, *, since: datetime, cursor: str | None = None, limit: int = 100
    ) -> SettlementPage:
        params: dict[str, str | int] = {"created_gte": since.isoformat(), "limit": limit}
        if cursor is not None:
            params["starting_after"] = cursor
        response = await self._send("GET", "/v1/balance_transactions", params=params)
        if response.status_code >= 400:
            raise self._rejected(response)
        body = response.json()
        items = tuple(_settlement(obj) for obj in body.get("data", []))
        more = bool(body.get("has_more")) and items
        return SettlementPage(items=items, next_cursor=items[-1].id if more else None)

    @classmethod
    def target_urls(cls, config: ProcessorConfig) -> dict[str, str]:
        assert isinstance(config, SandboxConfig)
        return {"base_url": config.base_url}

    async def _find(self, path: str, reference: str) -> dict[str, Any] | None:
        response = await self._send("GET", path, params={"reference": reference})
        if response.status_code >= 400:
            raise self._rejected(response)
        data: list[dict[str, Any]] = response.json().get("data", [])
        return data[0] if data else None

    async def find_payment(self, *, reference: str) -> ChargeState | None:
        found = await self._find("/v1/charges", reference)
        return _charge(found) if found is not None else None

    async def find_refund(self, *, reference: str) -> RefundState | None:
        found = await self._find("/v1/refunds", reference)
        return _refund(found) if found is not None else None

    # -- webhooks ----------------------------------------------------------------------------
    @classmethod
    def account_ref(cls, config: ProcessorConfig) -> str | None:
        assert isinstance(config, SandboxConfig)
        return config.account_id

    @classmethod
    def webhook_account(cls, body: bytes, headers: Mapping[str, str]) -> str | None:
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        account = payload.get("account") if isinstance(payload, dict) else None
        return account if isinstance(account, str) else None

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> ProcessorEvent:
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id")
        stamp = lowered.get("webhook-timestamp")
        signatures = lowered.get("webhook-signature")
        if not (msg_id and stamp and signatures):
            raise WebhookSignatureInvalid(
                "webhook-id, webhook-timestamp and webhook-signature headers are required"
            )
        try:
            signed_at = datetime.fromtimestamp(int(stamp), UTC)
            text_body = body.decode()
        except (ValueError, OverflowError, OSError) as exc:
            raise WebhookSignatureInvalid("malformed webhook-timestamp or body") from exc
        # Authenticate first, then judge freshness: a stale message is only reported as
        # stale (400) once we know the sandbox really signed it.
        expected = Webhook(self.config.webhook_secret.get_secret_value()).sign(
            msg_id, signed_at, text_body
        )
        if not any(hmac.compare_digest(expected, sig) for sig in signatures.split(" ")):
            raise WebhookSignatureInvalid("no webhook-signature matches")
        skew = abs((now - signed_at).total_seconds())
        if skew > self.webhook_tolerance_seconds:
            raise WebhookTimestampStale(
                f"webhook-timestamp is {int(skew)} s from now; at most "
                f"{self.webhook_tolerance_seconds} s is accepted"
            )
        try:
            payload = json.loads(text_body)
        except ValueError as exc:
            raise WebhookPayloadInvalid("the webhook body is not JSON") from exc
        event = self.parse_event(payload)
        if event.external_id != msg_id:
            raise WebhookPayloadInvalid("webhook-id and the event id differ")
        return event

    @classmethod
    def parse_event(cls, payload: dict[str, Any]) -> ProcessorEvent:
        try:
            obj = payload["data"]["object"]
            kind = obj.get("object")
            created = payload.get("created")
            return ProcessorEvent(
                external_id=str(payload["id"]),
                type=str(payload["type"]),
                occurred_at=datetime.fromisoformat(created) if created else None,
                charge=_charge(obj) if kind == "charge" else None,
                refund=_refund(obj) if kind == "refund" else None,
                raw=payload,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WebhookPayloadInvalid(f"not a sandbox event: {exc!r}") from exc
