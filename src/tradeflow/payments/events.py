"""Events the payments context publishes.

Every payment fact is an event of the payment's aggregate (`payment:<id>`),
refunds included, so subscribers see one payment's story in order. Amounts
are the amount *of this fact* (one capture, one refund), so a subscriber sums
them; totals ride along for convenience.
"""

from __future__ import annotations

import uuid

from pydantic import Field

from tradeflow.events import EventPayload, event_type


class PaymentEvent(EventPayload):
    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID
    processor: str
    amount_minor: int = Field(description="Minor units of this fact (this capture, this refund).")
    currency: str = Field(description="ISO 4217.")


@event_type("payment.intent_created", aggregate="payment")
class PaymentIntentCreated(PaymentEvent):
    """A payment intent for an invoice reached its processor (`amount_minor`: the amount asked)."""

    capture_method: str = Field(description="`automatic` or `manual`.")


@event_type("payment.authorized", aggregate="payment")
class PaymentAuthorized(PaymentEvent):
    """The processor authorised the payment; it can now be captured in full or in part."""


@event_type("payment.captured", aggregate="payment")
class PaymentCaptured(PaymentEvent):
    """Money was captured: `amount_minor` is this capture, `amount_captured_total_minor` the
    payment's total so far, `fee_minor` the processor's fee on this capture."""

    amount_captured_total_minor: int
    # Added to v1 as an optional field with a default (additive, not breaking): events
    # stored before it validate unchanged and read as "no fee reported".
    fee_minor: int = Field(
        default=0,
        ge=0,
        description="What the processor keeps of this capture (its fee), minor units; "
        "0 when it reports none.",
    )


@event_type("payment.canceled", aggregate="payment")
class PaymentCanceled(PaymentEvent):
    """An authorisation nothing was captured from was voided at the processor (e.g. it
    expired uncaptured); the hold on the buyer's funds is released and the invoice is open
    again. `amount_minor` is the amount that was authorised."""

    reason: str | None = Field(
        default=None, description="Why, e.g. `authorization_expired`; None if not ours."
    )


@event_type("payment.failed", aggregate="payment")
class PaymentFailed(PaymentEvent):
    """The processor declined the payment, or it never reached the processor."""

    failure_code: str | None = None
    failure_message: str | None = None


@event_type("refund.succeeded", aggregate="payment")
class RefundSucceeded(PaymentEvent):
    """Money was refunded: `amount_minor` is this refund."""

    refund_id: uuid.UUID
    amount_refunded_total_minor: int


@event_type("refund.failed", aggregate="payment")
class RefundFailed(PaymentEvent):
    """The processor refused a refund, or it never reached the processor."""

    refund_id: uuid.UUID
    failure_code: str | None = None


@event_type("processor_event.received", aggregate="processor_object")
class ProcessorEventReceived(EventPayload):
    """A verified webhook from a payment processor was stored; the payments handler applies it.
    Its aggregate is the processor's object, so events about one object apply in turn."""

    webhook_id: uuid.UUID
    processor: str
    external_id: str
    type: str
    object_id: str | None = None
