"""Request and response bodies of the customers API (unknown fields are rejected)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from tradeflow.identity.principal import BuyerRole
from tradeflow.kit.currency import CurrencyCode
from tradeflow.kit.text import Description, Line, Name

MAX_MONEY_MINOR = 10**15  # a thousand trillion minor units: beyond any real credit line

MoneyMinor = Annotated[
    int,
    Field(ge=0, le=MAX_MONEY_MINOR, description="Integer amount in minor units (cents)."),
]
Percent = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=5, decimal_places=2, description="0–100, two decimals."),
]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), Field(description="ISO 3166-1 alpha-2.")
]
TaxId = Annotated[Line, StringConstraints(max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(Strict):
    line1: Name
    line2: Line = ""
    city: Name
    postal_code: Annotated[Line, StringConstraints(max_length=20)] = ""
    region: Line = ""
    country: CountryCode


# -- customer groups ---------------------------------------------------------------------------
class CustomerGroupIn(Strict):
    name: Name
    description: Description = ""
    discount_percent: Percent = Field(
        default=Decimal(0),
        description="Taken off base prices for the group's customers when no contract price "
        "or group price list applies (see docs/pricing.md).",
    )


class CustomerGroupPatch(Strict):
    name: Name | None = None
    description: Description | None = None
    discount_percent: Percent | None = None


class CustomerGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    discount_percent: Decimal
    created_at: datetime
    updated_at: datetime


# -- customers ---------------------------------------------------------------------------------
class CustomerIn(Strict):
    name: Name
    tax_id: TaxId | None = None
    billing_address: Address | None = None
    currency: CurrencyCode
    payment_terms_days: int = Field(default=30, ge=0, le=365, description="Invoice due after.")
    credit_limit_minor: MoneyMinor | None = Field(
        default=None, description="Open receivables allowed, minor units; null: no limit."
    )
    group_id: uuid.UUID | None = None
    active: bool = True


class CustomerPatch(Strict):
    """Only the fields sent change; send `null` to clear an optional one."""

    name: Name | None = None
    tax_id: TaxId | None = None
    billing_address: Address | None = None
    currency: CurrencyCode | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)
    credit_limit_minor: MoneyMinor | None = None
    group_id: uuid.UUID | None = None
    active: bool | None = None


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    tax_id: str | None
    billing_address: Address | None
    currency: str
    payment_terms_days: int
    credit_limit_minor: int | None
    group_id: uuid.UUID | None
    active: bool
    created_at: datetime
    updated_at: datetime


# -- buyers ------------------------------------------------------------------------------------
class BuyerIn(Strict):
    email: EmailStr
    password: str = Field(min_length=1, max_length=256, description="12+ characters, not common.")
    role: BuyerRole = BuyerRole.BUYER
    display_name: Name | None = None
    spending_limit_minor: MoneyMinor | None = Field(
        default=None,
        description="Orders above this wait for an approver of the company; null: no limit.",
    )


class BuyerPatch(Strict):
    spending_limit_minor: MoneyMinor | None = None


class BuyerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    customer_id: uuid.UUID
    email: str
    role: BuyerRole
    spending_limit_minor: int | None
    created_at: datetime
    updated_at: datetime
