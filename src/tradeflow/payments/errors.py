"""Problems the payments API reports (each rendered as problem+json)."""

from __future__ import annotations

from typing import Any

from tradeflow.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProblemError,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableEntity,
)


class PaymentNotFound(NotFound):
    slug, title = "payment-not-found", "Payment not found"


class RefundNotFound(NotFound):
    slug, title = "refund-not-found", "Refund not found"


class ProcessorNotConfigured(UnprocessableEntity):
    slug, title = "processor-not-configured", "No usable payment processor"


class InvalidProcessorConfig(UnprocessableEntity):
    slug, title = "invalid-processor-config", "Invalid processor configuration"


class ProcessorAccountInUse(Conflict):
    slug, title = "processor-account-in-use", "Processor account already connected"


class InvalidPaymentRequest(UnprocessableEntity):
    """Bad input found by the service; `field` (and `errors`, like validation) name the field."""

    slug, title = "invalid-payment-request", "Invalid payment request"

    def __init__(self, detail: str, *, field: str, **extra: Any) -> None:
        super().__init__(
            detail,
            field=field,
            errors=[{"field": field, "message": detail, "type": "invalid"}],
            **extra,
        )


class InvoiceNotPayable(Conflict):
    slug, title = "invoice-not-payable", "Invoice cannot take a payment"


class PaymentStateConflict(Conflict):
    slug, title = "payment-state-conflict", "Payment is not in a state that allows this"


class ProcessorDown(ServiceUnavailable):
    """The processor could not be reached; nothing was recorded and nothing was charged."""

    slug, title = "processor-unavailable", "Payment processor unavailable"


class ProcessorRefused(ProblemError):
    """The processor refused our request for a reason that is not the client's input."""

    status, slug, title = 502, "processor-refused", "Payment processor refused the request"


class WebhookSignatureError(Unauthorized):
    slug, title = "webhook-signature-invalid", "Webhook signature invalid"

    def __init__(self, detail: str | None = None) -> None:
        # Not a bearer-token endpoint: no WWW-Authenticate challenge to offer.
        super().__init__(detail, headers={})


class WebhookStale(BadRequest):
    slug, title = "webhook-timestamp-stale", "Webhook timestamp outside the tolerance"


class WebhookInvalid(BadRequest):
    slug, title = "webhook-invalid", "Webhook not understood"
