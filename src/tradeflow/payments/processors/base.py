"""The processor plugin contract: a typed base class, its config, and what calls can return.

A processor plugin is a `Processor` subclass registered in the
`tradeflow.processors` entry-point group. It declares

* `name` (the key tenants enable it under and the path segment of its
  webhook URL), `title`, and `config_model` — a Pydantic model whose
  `SecretStr` fields are secrets: the payments service stores them encrypted
  at rest with the key ring and never returns them;
* the calls below (`void`, `list_settlements` and `target_urls` are optional:
  their defaults refuse or declare nothing). Plugins only speak their
  processor's protocol; the payments service does the hard parts (intent
  before the call, our idempotency key on every write, resolving ambiguous
  outcomes by asking, applying facts by object version).

How a call can end — the distinction the whole payments flow rests on:

* it returns a state (`ChargeState` / `RefundState`): the processor answered.
  A declined charge is a state too (`status == "failed"`);
* `ProcessorRejected`: the processor refused the request itself (4xx: bad
  payment method, amount too large, not capturable) — nothing happened;
* `ProcessorUnavailable`: the request certainly never reached the processor
  (connection refused, DNS failure) — nothing happened, safe to retry;
* `ProcessorOutcomeUnknown`: it may have happened (timeout after sending, a
  5xx, a dropped connection) — never retry blindly; look the object up by our
  reference (`find_payment` / `find_refund`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

ChargeStatus = Literal["requires_capture", "partially_captured", "captured", "failed", "canceled"]
RefundStatus = Literal["pending", "succeeded", "failed"]


class ProcessorConfig(BaseModel):
    """Base of every plugin's configuration; `SecretStr` fields are encrypted at rest."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.model_fields.items()
            if info.annotation is SecretStr or info.annotation == SecretStr | None
        ]


# -- what calls return -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capture:
    id: str
    amount_minor: int
    reference: str | None
    fee_minor: int = 0  # what the processor keeps of this capture


@dataclass(frozen=True, slots=True)
class ChargeState:
    """A processor's charge as it stands, with the version that orders its changes."""

    id: str
    reference: str | None
    status: ChargeStatus
    amount_minor: int
    currency: str
    amount_captured_minor: int
    amount_refunded_minor: int
    version: int
    failure_code: str | None = None
    failure_message: str | None = None
    captures: tuple[Capture, ...] = ()
    # The processor's fees on all captures so far; grows with them, never shrinks.
    fee_minor: int = 0


@dataclass(frozen=True, slots=True)
class RefundState:
    id: str
    reference: str | None
    payment_id: str  # the processor's charge id
    status: RefundStatus
    amount_minor: int
    currency: str
    version: int
    failure_code: str | None = None


SettlementKind = Literal["capture", "refund"]


@dataclass(frozen=True, slots=True)
class SettlementItem:
    """One money movement at the processor (a balance transaction), as its books show it.

    `amount_minor` is the gross amount moved (positive for captures and refunds alike);
    `fee_minor` what the processor kept of it; `payment_reference` the reference we sent
    with the charge (our payment id), or None for a charge we did not make.
    """

    id: str
    kind: SettlementKind
    charge_id: str
    payment_reference: str | None
    amount_minor: int
    fee_minor: int
    currency: str
    created_at: datetime
    source_id: str  # the capture or refund at the processor


@dataclass(frozen=True, slots=True)
class SettlementPage:
    items: tuple[SettlementItem, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ProcessorEvent:
    """A verified inbound webhook, normalised: which object it is about and its state then."""

    external_id: str
    type: str
    occurred_at: datetime | None
    charge: ChargeState | None = None
    refund: RefundState | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def object_id(self) -> str | None:
        if self.charge is not None:
            return self.charge.id
        if self.refund is not None:
            return self.refund.id
        return None


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    reference: str  # our payment id
    idempotency_key: str
    amount_minor: int
    currency: str
    payment_method: str
    capture: bool
    description: str | None = None


# -- how calls fail ----------------------------------------------------------------------------


class ProcessorError(Exception):
    def __init__(self, message: str, *, code: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code


class ProcessorRejected(ProcessorError):
    """The processor refused the request (a 4xx other than a decline); nothing happened."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code)
        self.field = field


class ProcessorUnavailable(ProcessorError):
    """The request never reached the processor; nothing happened and a retry is safe."""


class ProcessorOutcomeUnknown(ProcessorError):
    """The request may have been applied; resolve by looking it up, never by sending it again."""


class WebhookSignatureInvalid(ProcessorError):
    """Missing, malformed or wrong signature (→ 401)."""


class WebhookTimestampStale(ProcessorError):
    """The signed timestamp is too far from now (→ 400): a replay or a badly skewed clock."""


class WebhookPayloadInvalid(ProcessorError):
    """Signed correctly but not an event this plugin understands (→ 400)."""


# -- the plugin ----------------------------------------------------------------------------------


class Processor(abc.ABC):
    """One tenant's configured connection to a processor (built per use, cheap)."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[ProcessorConfig]]
    # Seconds a webhook's signed timestamp may differ from now before it is refused as stale.
    webhook_tolerance_seconds: ClassVar[int] = 300

    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config

    @classmethod
    def account_ref(cls, config: ProcessorConfig) -> str | None:
        """The non-secret id of the merchant account this config speaks for.

        Inbound webhooks name it, and it routes them to the tenant whose
        config then verifies the signature. None: this processor sends no webhooks.
        """
        return None

    @classmethod
    def webhook_account(cls, body: bytes, headers: Mapping[str, str]) -> str | None:
        """The account an (unverified) inbound webhook claims to be for; routing only."""
        return None

    @abc.abstractmethod
    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> ProcessorEvent:
        """Check signature and timestamp, then parse; raise `Webhook*` errors otherwise."""

    @classmethod
    @abc.abstractmethod
    def parse_event(cls, payload: dict[str, Any]) -> ProcessorEvent:
        """Parse a stored, already verified event payload (the worker re-reads it)."""

    @abc.abstractmethod
    async def authorize(self, request: AuthorizeRequest) -> ChargeState:
        """Create a charge (captured at once when `request.capture`)."""

    @abc.abstractmethod
    async def capture(
        self, charge_id: str, *, amount_minor: int, idempotency_key: str, reference: str
    ) -> ChargeState:
        """Capture part or all of an authorised charge."""

    @abc.abstractmethod
    async def refund(
        self,
        charge_id: str,
        *,
        amount_minor: int,
        idempotency_key: str,
        reference: str,
        reason: str | None,
    ) -> RefundState:
        """Refund part or all of what was captured."""

    async def void(self, charge_id: str, *, idempotency_key: str, reference: str) -> ChargeState:
        """Cancel an authorisation nothing was captured from (the hold on the funds ends).

        Returns the charge, `canceled`. Plugins for processors without voids keep this
        default: a refusal, so expired authorisations are left to the processor's own expiry.
        """
        raise ProcessorRejected(
            f"The {self.name} processor does not support voiding authorisations.",
            code="void_not_supported",
        )

    async def list_settlements(
        self, *, since: datetime, cursor: str | None = None, limit: int = 100
    ) -> SettlementPage:
        """The processor's money movements (captures, refunds, their fees) at or after `since`,
        oldest first, a page at a time; pass `next_cursor` back for the next page.

        Reconciliation compares these with the ledger. The default raises
        `ProcessorRejected` (code `settlements_not_supported`): reconciliation then falls
        back to the totals payments recorded from the processor's events.
        """
        raise ProcessorRejected(
            f"The {self.name} processor does not list settlements.",
            code="settlements_not_supported",
        )

    @classmethod
    def target_urls(cls, config: ProcessorConfig) -> dict[str, str]:
        """The config's fields that name an address Tradeflow will call, by field name.

        Checked against the SSRF rule when a tenant saves the config: a tenant admin must
        not be able to point Tradeflow at private or loopback addresses.
        """
        return {}

    @abc.abstractmethod
    async def find_payment(self, *, reference: str) -> ChargeState | None:
        """The charge made for our payment `reference`, if the processor has one."""

    @abc.abstractmethod
    async def find_refund(self, *, reference: str) -> RefundState | None:
        """The refund made for our refund `reference`, if the processor has one."""

    async def aclose(self) -> None:
        """Release connections."""
        return None

    async def __aenter__(self) -> Processor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
