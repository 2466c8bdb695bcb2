"""Request bodies and fault switches of the sandbox processor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Test payment methods, in the manner of a processor's test cards: the token decides the
# outcome of a new charge (`None` approves it, a string is the decline code).
PAYMENT_METHODS: dict[str, str | None] = {
    "pm_sandbox_ok": None,
    "pm_sandbox_visa": None,
    "pm_sandbox_sepa": None,
    "pm_sandbox_decline": "card_declined",
    "pm_sandbox_insufficient_funds": "insufficient_funds",
    "pm_sandbox_expired": "expired_card",
}

DECLINE_MESSAGES: dict[str, str] = {
    "card_declined": "The payment method was declined.",
    "insufficient_funds": "The payment method has insufficient funds.",
    "expired_card": "The payment method has expired.",
}

MAX_AMOUNT = 10**13


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChargeIn(_Body):
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Minor units.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(min_length=1, max_length=100)
    capture: bool = True
    reference: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)


class CaptureIn(_Body):
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    reference: str | None = Field(default=None, max_length=200)


class RefundIn(_Body):
    charge: str = Field(min_length=1, max_length=100)
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    reference: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=200)


class VoidIn(_Body):
    reference: str | None = Field(default=None, max_length=200)


class AccountIn(_Body):
    name: str = Field(default="sandbox merchant", min_length=1, max_length=200)
    webhook_url: str | None = Field(default=None, max_length=2000)


class AccountPatch(_Body):
    """Only the fields sent change."""

    webhook_url: str | None = Field(default=None, max_length=2000)
    fee_bps: int | None = Field(
        default=None, ge=0, le=10_000, description="Fee per capture, in basis points."
    )
    fee_fixed_minor: int | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="Fixed fee per capture, minor units."
    )


class DirectChargeIn(_Body):
    """A charge captured at the processor without any call from Tradeflow (control plane)."""

    amount: int = Field(gt=0, le=MAX_AMOUNT)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reference: str | None = Field(default=None, max_length=200)


class DirectRefundIn(_Body):
    """A refund made at the processor without any call from Tradeflow (control plane)."""

    charge: str = Field(min_length=1, max_length=100)
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    reason: str | None = Field(default=None, max_length=200)


class Faults(_Body):
    """Per-account fault switches; each stays in force until changed."""

    decline_code: str | None = Field(
        default=None,
        max_length=60,
        description="Decline every new charge with this code, whatever the payment method.",
    )
    delay_after_commit_seconds: float = Field(
        default=0,
        ge=0,
        le=600,
        description="Commit charges, captures and refunds, then wait this long before "
        "answering — longer than the caller's timeout simulates 'timed out after charging'.",
    )
    webhooks: Literal["normal", "duplicate", "hold", "off"] = Field(
        default="normal",
        description="normal: each event once, in order; duplicate: each event twice; "
        "hold: keep events until flushed (then in the order asked); off: never send.",
    )
    webhook_signature: Literal["valid", "invalid"] = "valid"
    webhook_timestamp_offset_seconds: int = Field(default=0, ge=-7 * 86400, le=7 * 86400)


class FlushIn(_Body):
    order: Literal["fifo", "reverse"] = "fifo"
