"""The `commerceml` connector plugin: its configuration and what it declares.

1C:Enterprise is the client here and Tradeflow the "site": 1C polls the exchange
endpoint (`/v1/connectors/{id}/commerceml/exchange`), uploads its catalog and
prices, and downloads orders. So the plugin has nothing to push from the
delivery engine; the protocol lives in `exchange.py`, the catalog import in
`importer.py`, the order export in `export.py`.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from tradeflow.integrations.plugins import Capability, ConnectorConfig, ConnectorPlugin, Ownership
from tradeflow.kit.currency import MINOR_UNITS

ExportStatus = Literal[
    "confirmed", "invoiced", "partially_paid", "paid", "fulfilled", "cancelled", "refunded"
]
# The states a seller's 1C wants an order in: from confirmation on (an order still waiting
# for approval or the credit check may never become a sale), and every later change of it.
DEFAULT_EXPORT: tuple[ExportStatus, ...] = (
    "confirmed",
    "invoiced",
    "partially_paid",
    "paid",
    "fulfilled",
    "cancelled",
    "refunded",
)
DEFAULT_OWNERSHIP: dict[str, Ownership] = {"product.description": "ours"}
FIELDS = (
    "product.name",
    "product.description",
    "product.active",
    "sku.name",
    "sku.unit",
    "sku.active",
)


class CommerceMLConfig(ConnectorConfig):
    login: str = Field(min_length=1, max_length=100, description="1C's exchange user name.")
    password: SecretStr = Field(description="1C's exchange password (HTTP Basic on checkauth).")
    price_types: dict[str, uuid.UUID] = Field(
        default_factory=dict,
        description="1C price type (its ТипЦены Ид, or its name) → Tradeflow price list id. "
        "Prices of unmapped types are ignored.",
    )
    default_currency: str = Field(
        default="RUB", description="When neither the price nor its type names a currency."
    )
    create_products: bool = Field(
        default=True,
        description="Whether an import may create products and SKUs it does not know; "
        "otherwise unknown ones are reported per row.",
    )
    ownership: dict[str, Ownership] = Field(
        default_factory=lambda: dict(DEFAULT_OWNERSHIP),
        description="Per field (product.name, product.description, product.active, sku.name, "
        "sku.unit, sku.active): `ours` — Tradeflow keeps its value after creation; `theirs` — "
        "1C's value is always taken; `shared` — 1C's change is taken unless ours changed too "
        "(reported as a conflict, ours kept).",
    )
    default_owner: Ownership = "shared"
    file_limit: int = Field(
        default=1_000_000,
        ge=10_000,
        le=100_000_000,
        description="Largest chunk 1C may upload per request (announced by mode=init; also "
        "capped by the server's request-body limit).",
    )
    max_file_bytes: int = Field(
        default=50_000_000,
        ge=10_000,
        le=1_000_000_000,
        description="Largest whole file accepted (an XML file past it is refused unparsed).",
    )
    export_statuses: list[ExportStatus] = Field(
        default_factory=lambda: list(DEFAULT_EXPORT),
        description="Order states sent to 1C.",
    )
    rows_per_step: int = Field(
        default=500,
        ge=1,
        le=1_000_000,
        description="Rows (products, offers) one `mode=import` request applies; a larger file "
        "answers `progress` and 1C calls again for the rest.",
    )
    orders_per_query: int = Field(default=500, ge=1, le=5000)
    session_minutes: int = Field(default=60, ge=1, le=24 * 60)

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in MINOR_UNITS:
            raise ValueError(f"{value!r} is not an ISO 4217 currency we trade in")
        return value

    @field_validator("ownership")
    @classmethod
    def _fields(cls, value: dict[str, Ownership]) -> dict[str, Ownership]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; known: {', '.join(FIELDS)}")
        return value

    def owner(self, name: str) -> Ownership:
        return self.ownership.get(name, self.default_owner)


class CommerceMLConnector(ConnectorPlugin):
    slug: ClassVar[str] = "commerceml"
    title: ClassVar[str] = "CommerceML 2 (1C:Enterprise)"
    # None of the framework's push or scheduled-pull capabilities: 1C calls us.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    config_model: ClassVar[type[ConnectorConfig]] = CommerceMLConfig
    # 1C polls us, so no event is delivered to the instance's subscriber. A subscriber with
    # no filter would receive every event, so the filter names the one event type only ever
    # addressed to a single connector (and never to this kind).
    event_types: ClassVar[tuple[str, ...]] = ("connector.resync_requested",)
