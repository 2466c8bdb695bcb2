"""Events the customers context publishes (payloads: ids and frozen facts)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from pydantic import Field

from tradeflow.events import EventPayload, event_type


@event_type("customer.created", aggregate="customer")
class CustomerCreated(EventPayload):
    """A customer company was created."""

    customer_id: uuid.UUID
    name: str
    currency: str = Field(description="ISO 4217 code the customer is invoiced in.")
    group_id: uuid.UUID | None
    payment_terms_days: int
    credit_limit_minor: int | None = Field(description="Minor units; null: no limit.")


@event_type("customer.updated", aggregate="customer")
class CustomerUpdated(EventPayload):
    """A customer's details changed; `changed` names the fields."""

    customer_id: uuid.UUID
    changed: list[str]
    currency: str
    group_id: uuid.UUID | None
    active: bool
    credit_limit_minor: int | None


@event_type("customer_group.created", aggregate="customer_group")
class CustomerGroupCreated(EventPayload):
    """A customer group was created."""

    customer_group_id: uuid.UUID
    name: str
    discount_percent: Decimal


@event_type("customer_group.updated", aggregate="customer_group")
class CustomerGroupUpdated(EventPayload):
    """A customer group changed (a discount change changes its customers' prices)."""

    customer_group_id: uuid.UUID
    changed: list[str]
    name: str
    discount_percent: Decimal


@event_type("customer_group.deleted", aggregate="customer_group")
class CustomerGroupDeleted(EventPayload):
    """An unused customer group was deleted."""

    customer_group_id: uuid.UUID


@event_type("user.created", aggregate="user")
class UserCreated(EventPayload):
    """A buyer user of a customer company was created (a welcome e-mail hangs off this)."""

    user_id: uuid.UUID
    kind: Literal["buyer", "staff"]
    email: str
    display_name: str | None
    role: str
    customer_id: uuid.UUID | None


@event_type("buyer.updated", aggregate="user")
class BuyerUpdated(EventPayload):
    """A buyer's spending limit changed."""

    user_id: uuid.UUID
    customer_id: uuid.UUID
    role: str
    spending_limit_minor: int | None
