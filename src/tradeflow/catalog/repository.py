"""Every query of the catalog context, scoped to one tenant in one place (`_scoped`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog.cache import Candidates, SkuFacts
from tradeflow.catalog.models import (
    ContractPrice,
    PriceList,
    PriceListEntry,
    Product,
    ProductImage,
    Sku,
)
from tradeflow.catalog.pricing import ContractCandidate, ListCandidate, Tier
from tradeflow.db import driver_connection
from tradeflow.kit.pagination import PageRequest, paginate

M = TypeVar("M", Product, Sku, ProductImage, PriceList, PriceListEntry, ContractPrice)

_BUMP = text(
    "INSERT INTO pricing_versions AS pv (tenant_id, version) VALUES (:tenant_id, 1) "
    "ON CONFLICT (tenant_id) DO UPDATE SET version = pv.version + 1 RETURNING version"
)
_VERSION = text("SELECT version FROM pricing_versions WHERE tenant_id = :tenant_id")
# One round trip for both: the session's tenant (as `enter_tenant` set it) and its version.
_TENANT_AND_VERSION = (
    "SELECT t.id::text, coalesce((SELECT version FROM pricing_versions WHERE tenant_id = t.id), 0) "
    "FROM (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid AS id) AS t"
)


async def tenant_and_pricing_version(session: AsyncSession) -> tuple[uuid.UUID | None, int]:
    """The tenant a tenant session is confined to, and that tenant's pricing version.

    Every quote (and every order) starts here: plain SQL on the driver connection, inside
    the session's transaction, skips SQLAlchemy's per-statement work.
    """
    row = await (await driver_connection(session)).fetchrow(_TENANT_AND_VERSION)
    return (uuid.UUID(row[0]) if row[0] else None), int(row[1])


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CatalogRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _scoped(self, model: type[M]) -> Select[M]:
        return select(model).where(model.tenant_id == self.tenant_id)

    async def _one(self, stmt: Select[M]) -> M | None:
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, *rows: Any) -> None:
        for row in rows:
            row.tenant_id = self.tenant_id
            self.session.add(row)
        await self.session.flush()

    async def delete(self, row: Any) -> None:
        await self.session.delete(row)
        await self.session.flush()

    # -- pricing version ---------------------------------------------------------------------
    async def bump_pricing_version(self) -> int:
        """+1 in the caller's transaction: committed with the change it announces, or not at all."""
        result = await self.session.execute(_BUMP, {"tenant_id": self.tenant_id})
        return int(result.scalar_one())

    async def pricing_version(self) -> int:
        value = (await self.session.execute(_VERSION, {"tenant_id": self.tenant_id})).scalar()
        return int(value or 0)

    # -- products ----------------------------------------------------------------------------
    async def product(self, product_id: uuid.UUID, *, for_update: bool = False) -> Product | None:
        stmt = self._scoped(Product).where(Product.id == product_id)
        return await self._one(stmt.with_for_update() if for_update else stmt)

    async def list_products(
        self, page: PageRequest, *, active: bool | None = None, name: str | None = None
    ) -> tuple[list[Product], str | None]:
        stmt = self._scoped(Product)
        if active is not None:
            stmt = stmt.where(Product.active == active)
        if name:
            stmt = stmt.where(Product.name.ilike(f"%{escape_like(name)}%", escape="\\"))
        return await paginate(self.session, stmt, page, order_by=[Product.id])

    async def skus_of(self, product_ids: Sequence[uuid.UUID]) -> list[Sku]:
        if not product_ids:
            return []
        stmt = self._scoped(Sku).where(Sku.product_id.in_(product_ids)).order_by(Sku.id)
        return list((await self.session.execute(stmt)).scalars().all())

    # -- SKUs --------------------------------------------------------------------------------
    async def sku(self, sku_id: uuid.UUID, *, for_update: bool = False) -> Sku | None:
        stmt = self._scoped(Sku).where(Sku.id == sku_id)
        return await self._one(stmt.with_for_update() if for_update else stmt)

    async def sku_by_code(self, code: str) -> Sku | None:
        return await self._one(self._scoped(Sku).where(Sku.code == code))

    async def skus_with_products(self, codes: Sequence[str]) -> list[tuple[Sku, Product]]:
        if not codes:
            return []
        stmt = (
            select(Sku, Product)
            .join(Product, Product.id == Sku.product_id)
            .where(Sku.tenant_id == self.tenant_id, Sku.code.in_(list(codes)))
        )
        return [(s, p) for s, p in (await self.session.execute(stmt)).all()]

    async def list_skus(
        self,
        page: PageRequest,
        *,
        product_id: uuid.UUID | None = None,
        codes: Sequence[str] | None = None,
        active: bool | None = None,
        name: str | None = None,
    ) -> tuple[list[Sku], str | None]:
        stmt = self._scoped(Sku)
        if product_id is not None:
            stmt = stmt.where(Sku.product_id == product_id)
        if codes:
            stmt = stmt.where(Sku.code.in_(list(codes)))
        if active is not None:
            stmt = stmt.where(Sku.active == active)
        if name:
            stmt = stmt.where(Sku.name.ilike(f"%{escape_like(name)}%", escape="\\"))
        return await paginate(self.session, stmt, page, order_by=[Sku.id])

    async def sku_codes(self, sku_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not sku_ids:
            return {}
        stmt = select(Sku.id, Sku.code).where(
            Sku.tenant_id == self.tenant_id, Sku.id.in_(list(set(sku_ids)))
        )
        return {row.id: row.code for row in (await self.session.execute(stmt)).all()}

    # -- images ------------------------------------------------------------------------------
    async def image(
        self, image_id: uuid.UUID, *, product_id: uuid.UUID | None = None, for_update: bool = False
    ) -> ProductImage | None:
        stmt = self._scoped(ProductImage).where(ProductImage.id == image_id)
        if product_id is not None:
            stmt = stmt.where(ProductImage.product_id == product_id)
        return await self._one(stmt.with_for_update() if for_update else stmt)

    async def list_images(
        self, product_id: uuid.UUID, page: PageRequest, *, status: str | None = None
    ) -> tuple[list[ProductImage], str | None]:
        stmt = self._scoped(ProductImage).where(ProductImage.product_id == product_id)
        if status is not None:
            stmt = stmt.where(ProductImage.status == status)
        return await paginate(
            self.session, stmt, page, order_by=[ProductImage.id], descending=False
        )

    # -- price lists -------------------------------------------------------------------------
    async def price_list(
        self, price_list_id: uuid.UUID, *, for_update: bool = False
    ) -> PriceList | None:
        stmt = self._scoped(PriceList).where(PriceList.id == price_list_id)
        return await self._one(stmt.with_for_update() if for_update else stmt)

    async def list_price_lists(
        self,
        page: PageRequest,
        *,
        currency: str | None = None,
        customer_group_id: uuid.UUID | None = None,
        base: bool | None = None,
        active: bool | None = None,
        valid_on: datetime | None = None,
        visible_groups: Sequence[uuid.UUID | None] | None = None,
    ) -> tuple[list[PriceList], str | None]:
        stmt = self._scoped(PriceList)
        if currency is not None:
            stmt = stmt.where(PriceList.currency == currency)
        if customer_group_id is not None:
            stmt = stmt.where(PriceList.customer_group_id == customer_group_id)
        if base is not None:
            stmt = stmt.where(
                PriceList.customer_group_id.is_(None)
                if base
                else PriceList.customer_group_id.is_not(None)
            )
        if active is not None:
            stmt = stmt.where(PriceList.active == active)
        if valid_on is not None:
            stmt = stmt.where(
                or_(PriceList.valid_from.is_(None), PriceList.valid_from <= valid_on),
                or_(PriceList.valid_to.is_(None), PriceList.valid_to > valid_on),
            )
        if visible_groups is not None:
            groups = [g for g in visible_groups if g is not None]
            stmt = stmt.where(
                or_(PriceList.customer_group_id.is_(None), PriceList.customer_group_id.in_(groups))
            )
        return await paginate(self.session, stmt, page, order_by=[PriceList.id])

    async def entry(self, price_list_id: uuid.UUID, entry_id: uuid.UUID) -> PriceListEntry | None:
        stmt = self._scoped(PriceListEntry).where(
            PriceListEntry.id == entry_id, PriceListEntry.price_list_id == price_list_id
        )
        return await self._one(stmt)

    async def entry_for(
        self, price_list_id: uuid.UUID, sku_id: uuid.UUID, min_quantity: int
    ) -> PriceListEntry | None:
        stmt = self._scoped(PriceListEntry).where(
            PriceListEntry.price_list_id == price_list_id,
            PriceListEntry.sku_id == sku_id,
            PriceListEntry.min_quantity == min_quantity,
        )
        return await self._one(stmt)

    async def list_entries(
        self, price_list_id: uuid.UUID, page: PageRequest, *, sku_id: uuid.UUID | None = None
    ) -> tuple[list[PriceListEntry], str | None]:
        stmt = self._scoped(PriceListEntry).where(PriceListEntry.price_list_id == price_list_id)
        if sku_id is not None:
            stmt = stmt.where(PriceListEntry.sku_id == sku_id)
        return await paginate(
            self.session, stmt, page, order_by=[PriceListEntry.id], descending=False
        )

    # -- contract prices ---------------------------------------------------------------------
    async def contract_price(
        self, contract_price_id: uuid.UUID, *, for_update: bool = False
    ) -> ContractPrice | None:
        stmt = self._scoped(ContractPrice).where(ContractPrice.id == contract_price_id)
        return await self._one(stmt.with_for_update() if for_update else stmt)

    async def list_contract_prices(
        self,
        page: PageRequest,
        *,
        customer_id: uuid.UUID | None = None,
        sku_id: uuid.UUID | None = None,
        currency: str | None = None,
        valid_on: datetime | None = None,
    ) -> tuple[list[ContractPrice], str | None]:
        stmt = self._scoped(ContractPrice)
        if customer_id is not None:
            stmt = stmt.where(ContractPrice.customer_id == customer_id)
        if sku_id is not None:
            stmt = stmt.where(ContractPrice.sku_id == sku_id)
        if currency is not None:
            stmt = stmt.where(ContractPrice.currency == currency)
        if valid_on is not None:
            stmt = stmt.where(
                or_(ContractPrice.valid_from.is_(None), ContractPrice.valid_from <= valid_on),
                or_(ContractPrice.valid_to.is_(None), ContractPrice.valid_to > valid_on),
            )
        return await paginate(self.session, stmt, page, order_by=[ContractPrice.id])

    # -- pricing candidates ------------------------------------------------------------------
    async def pricing_candidates(
        self,
        *,
        sku_code: str,
        customer_id: uuid.UUID,
        currency: str,
        group_id: uuid.UUID | None,
    ) -> Candidates:
        """What can price `sku_code` for this customer: three indexed reads."""
        found = (
            await self.session.execute(
                select(Sku, Product.name, Product.active)
                .join(Product, Product.id == Sku.product_id)
                .where(Sku.tenant_id == self.tenant_id, Sku.code == sku_code)
            )
        ).one_or_none()
        if found is None:
            return Candidates(sku=None)
        sku, product_name, product_active = found
        facts = SkuFacts(
            id=sku.id,
            code=sku.code,
            name=sku.name,
            unit=sku.unit,
            active=sku.active and product_active,
            product_id=sku.product_id,
            product_name=product_name,
        )
        contracts = (
            await self.session.execute(
                select(ContractPrice).where(
                    ContractPrice.tenant_id == self.tenant_id,
                    ContractPrice.customer_id == customer_id,
                    ContractPrice.sku_id == sku.id,
                    ContractPrice.currency == currency,
                )
            )
        ).scalars()
        group_match = (
            PriceList.customer_group_id.is_(None)
            if group_id is None
            else or_(PriceList.customer_group_id.is_(None), PriceList.customer_group_id == group_id)
        )
        rows = (
            await self.session.execute(
                select(PriceList, PriceListEntry)
                .join(PriceListEntry, PriceListEntry.price_list_id == PriceList.id)
                .where(
                    and_(
                        PriceListEntry.tenant_id == self.tenant_id,
                        PriceListEntry.sku_id == sku.id,
                        PriceList.currency == currency,
                        PriceList.active.is_(True),
                        group_match,
                    )
                )
            )
        ).all()
        tiers: dict[uuid.UUID, list[Tier]] = {}
        lists: dict[uuid.UUID, PriceList] = {}
        for price_list, entry in rows:
            lists[price_list.id] = price_list
            tiers.setdefault(price_list.id, []).append(
                Tier(entry.id, entry.min_quantity, entry.unit_price_minor)
            )
        return Candidates(
            sku=facts,
            contracts=tuple(
                ContractCandidate(
                    id=c.id,
                    currency=c.currency,
                    min_quantity=c.min_quantity,
                    unit_price_minor=c.unit_price_minor,
                    valid_from=c.valid_from,
                    valid_to=c.valid_to,
                    note=c.note,
                )
                for c in contracts
            ),
            lists=tuple(
                ListCandidate(
                    id=pl.id,
                    name=pl.name,
                    currency=pl.currency,
                    customer_group_id=pl.customer_group_id,
                    valid_from=pl.valid_from,
                    valid_to=pl.valid_to,
                    active=pl.active,
                    tiers=tuple(sorted(tiers[pl.id], key=lambda t: t.min_quantity)),
                )
                for pl in lists.values()
            ),
        )
