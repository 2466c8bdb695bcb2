"""Problems the orders context answers with (RFC 9457, see `tradeflow.errors`)."""

from __future__ import annotations

from typing import Any

from tradeflow.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnprocessableEntity,
)


class OrderNotFound(NotFound):
    slug, title = "order-not-found", "Order not found"


class InvoiceNotFound(NotFound):
    slug, title = "invoice-not-found", "Invoice not found"


class TaxRateNotFound(NotFound):
    slug, title = "tax-rate-not-found", "Tax rate not found"


class InvalidOrder(UnprocessableEntity):
    """A line or field of the order is not acceptable; `errors` names each one."""

    slug, title = "invalid-order", "The order is not valid"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        super().__init__(summary, errors=errors)


class NotYourCustomer(Forbidden):
    slug, title = "not-your-customer", "Buyers order for their own company only"


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "The order cannot make this transition"


class CreditLimitExceeded(Conflict):
    slug, title = "credit-limit-exceeded", "The customer's credit limit would be exceeded"


class ApproverRequired(Forbidden):
    slug, title = "approver-required", "Only an approver of the customer company may decide"


class IfMatchRequired(PreconditionRequired):
    slug, title = "if-match-required", "If-Match required"


class StaleVersion(PreconditionFailed):
    slug, title = "stale-version", "The order changed since you read it"


class DuplicateTaxRate(Conflict):
    slug, title = "duplicate-tax-rate", "A tax rate with this code exists"
