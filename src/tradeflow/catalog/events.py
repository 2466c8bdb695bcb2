"""Events the catalog context publishes (payloads: ids and frozen facts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from tradeflow.events import EventPayload, event_type

Change = Literal["created", "updated", "deleted"]


@event_type("product.created", aggregate="product")
class ProductCreated(EventPayload):
    """A product was created, with the SKUs created alongside it."""

    product_id: uuid.UUID
    name: str
    active: bool
    sku_codes: list[str]


@event_type("product.updated", aggregate="product")
class ProductUpdated(EventPayload):
    """A product's name, description, attributes or active flag changed."""

    product_id: uuid.UUID
    changed: list[str]
    active: bool


@event_type("sku.created", aggregate="product")
class SkuCreated(EventPayload):
    """A SKU was added to a product."""

    sku_id: uuid.UUID
    product_id: uuid.UUID
    code: str
    name: str
    unit: str
    active: bool


@event_type("sku.updated", aggregate="product")
class SkuUpdated(EventPayload):
    """A SKU's name, unit, attributes or active flag changed."""

    sku_id: uuid.UUID
    product_id: uuid.UUID
    code: str
    changed: list[str]
    active: bool


@event_type("product_image.uploaded", aggregate="product")
class ProductImageUploaded(EventPayload):
    """An image was stored for a product; the worker makes its thumbnails."""

    image_id: uuid.UUID
    product_id: uuid.UUID
    content_type: str
    width: int
    height: int
    size_bytes: int


@event_type("product_image.processed", aggregate="product")
class ProductImageProcessed(EventPayload):
    """Thumbnails of an image were made (`ready`) or could not be (`failed`)."""

    image_id: uuid.UUID
    product_id: uuid.UUID
    status: Literal["ready", "failed"]
    error: str | None = None


@event_type("product_image.deleted", aggregate="product")
class ProductImageDeleted(EventPayload):
    """An image was deleted; the worker removes its files."""

    image_id: uuid.UUID
    product_id: uuid.UUID
    storage_keys: list[str] = Field(description="Media-relative paths of the files to remove.")


@event_type("price_list.changed", aggregate="price_list")
class PriceListChanged(EventPayload):
    """A price list, or its entries (tiers), changed; quotes reflect it from this commit on."""

    price_list_id: uuid.UUID
    change: Literal["created", "updated", "deleted", "entries_changed"]
    name: str
    currency: str
    customer_group_id: uuid.UUID | None = Field(description="null: a base price list.")
    valid_from: datetime | None
    valid_to: datetime | None
    active: bool
    sku_ids: list[uuid.UUID] = Field(
        default_factory=list, description="SKUs whose entries changed (entries_changed)."
    )
    pricing_version: int = Field(description="The tenant's pricing version after the change.")


@event_type("contract_price.changed", aggregate="contract_price")
class ContractPriceChanged(EventPayload):
    """A customer's contract price was created, changed or deleted."""

    contract_price_id: uuid.UUID
    change: Change
    customer_id: uuid.UUID
    sku_id: uuid.UUID
    sku: str
    currency: str
    min_quantity: int
    unit_price_minor: int
    valid_from: datetime | None
    valid_to: datetime | None
    pricing_version: int
