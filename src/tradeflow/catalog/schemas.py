"""Request and response bodies of the catalog and pricing API (unknown fields are rejected)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from tradeflow.kit.currency import CurrencyCode
from tradeflow.kit.text import Attributes, Description, Line, Name

MAX_UNIT_PRICE_MINOR = 10**12  # 10 billion in a 2-decimal currency: beyond any real unit price
MAX_QUANTITY = 1_000_000_000

SkuCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"),
    Field(
        description="1–64 characters: letters, digits and . _ / - (not first); unique per seller.",
        examples=["BOLT-M8-50"],
    ),
]
Unit = Annotated[
    Line,
    StringConstraints(min_length=1, max_length=20),
    Field(description="Unit of sale, e.g. each, box, kg.", examples=["each"]),
]
UnitPrice = Annotated[
    int, Field(ge=0, le=MAX_UNIT_PRICE_MINOR, description="Unit price in minor units.")
]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(Strict):
    valid_from: UtcDatetime | None = Field(default=None, description="Inclusive; null: always.")
    valid_to: UtcDatetime | None = Field(default=None, description="Exclusive; null: open-ended.")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.valid_from and self.valid_to and self.valid_from >= self.valid_to:
            raise ValueError("valid_to must be after valid_from")
        return self


# -- products and SKUs -------------------------------------------------------------------------
class SkuIn(Strict):
    code: SkuCode
    name: Name
    unit: Unit = "each"
    active: bool = True
    attributes: Attributes = Field(default_factory=dict)


class SkuPatch(Strict):
    name: Name | None = None
    unit: Unit | None = None
    active: bool | None = None
    attributes: Attributes | None = None


class SkuOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    product_id: uuid.UUID
    code: str
    name: str
    unit: str
    active: bool
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProductIn(Strict):
    name: Name
    description: Description = ""
    active: bool = True
    attributes: Attributes = Field(default_factory=dict)
    skus: list[SkuIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _distinct_codes(self) -> ProductIn:
        codes = [s.code for s in self.skus]
        if len(codes) != len(set(codes)):
            raise ValueError("skus: each code may appear once")
        return self


class ProductPatch(Strict):
    name: Name | None = None
    description: Description | None = None
    active: bool | None = None
    attributes: Attributes | None = None


class ProductOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    active: bool
    attributes: dict[str, Any]
    skus: list[SkuOut]
    created_at: datetime
    updated_at: datetime


# -- images ------------------------------------------------------------------------------------
class ThumbnailOut(BaseModel):
    size: int = Field(description="The box the thumbnail fits in, in pixels.")
    width: int
    height: int
    url: str


class ImageOut(BaseModel):
    id: uuid.UUID
    product_id: uuid.UUID
    filename: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    alt_text: str
    status: Literal["pending", "ready", "failed"] = Field(
        description="pending: thumbnails being made; ready: thumbnails made; failed: see error."
    )
    error: str | None
    url: str
    thumbnails: list[ThumbnailOut]
    created_at: datetime
    updated_at: datetime


# -- price lists -------------------------------------------------------------------------------
class EntryIn(Strict):
    sku: SkuCode
    min_quantity: Quantity = Field(default=1, description="The tier applies from this quantity.")
    unit_price_minor: UnitPrice


class EntryPatch(Strict):
    unit_price_minor: UnitPrice


class EntryOut(BaseModel):
    id: uuid.UUID
    price_list_id: uuid.UUID
    sku_id: uuid.UUID
    sku: str
    min_quantity: int
    unit_price_minor: int
    created_at: datetime
    updated_at: datetime


class PriceListIn(Window):
    name: Name
    currency: CurrencyCode
    customer_group_id: uuid.UUID | None = Field(
        default=None, description="The customer group it prices; null: the base price list."
    )
    active: bool = True
    entries: list[EntryIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _distinct_tiers(self) -> PriceListIn:
        tiers = [(e.sku, e.min_quantity) for e in self.entries]
        if len(tiers) != len(set(tiers)):
            raise ValueError("entries: each (sku, min_quantity) may appear once")
        return self


class PriceListPatch(Strict):
    """Name, window and active flag; currency and group are fixed (make a new list instead)."""

    name: Name | None = None
    valid_from: UtcDatetime | None = None
    valid_to: UtcDatetime | None = None
    active: bool | None = None


class PriceListOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    currency: str
    customer_group_id: uuid.UUID | None
    valid_from: datetime | None
    valid_to: datetime | None
    active: bool
    created_at: datetime
    updated_at: datetime


# -- contract prices ---------------------------------------------------------------------------
class ContractPriceIn(Window):
    customer_id: uuid.UUID
    sku: SkuCode
    unit_price_minor: UnitPrice
    min_quantity: Quantity = 1
    currency: CurrencyCode | None = Field(
        default=None, description="Must be the customer's currency; defaults to it."
    )
    note: Line = ""


class ContractPricePatch(Strict):
    unit_price_minor: UnitPrice | None = None
    valid_from: UtcDatetime | None = None
    valid_to: UtcDatetime | None = None
    note: Line | None = None


class ContractPriceOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    sku_id: uuid.UUID
    sku: str
    currency: str
    min_quantity: int
    unit_price_minor: int
    valid_from: datetime | None
    valid_to: datetime | None
    note: str
    created_at: datetime
    updated_at: datetime


# -- quotes ------------------------------------------------------------------------------------
class RuleOut(BaseModel):
    kind: Literal["contract", "price_list", "group_discount", "base"] = Field(
        description="Which rule won (precedence: contract > price_list > group_discount/base)."
    )
    id: uuid.UUID = Field(description="The contract price or price list that priced it.")
    name: str
    min_quantity: int = Field(description="The tier that applied.")
    detail: str = Field(description="Why this price, in words.")
    considered: list[str] = Field(description="Rules that also applied but lost, in order.")


class QuoteOut(BaseModel):
    customer_id: uuid.UUID
    sku: str
    sku_id: uuid.UUID
    product_id: uuid.UUID
    name: str
    unit: str
    quantity: int
    on: datetime = Field(description="The date the price is valid for.")
    unit_price_minor: int
    amount_minor: int = Field(description="unit_price_minor × quantity.")
    currency: str
    rule: RuleOut
