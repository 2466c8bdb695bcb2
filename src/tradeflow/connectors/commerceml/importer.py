"""Applying a CommerceML catalog/offers file to the catalog, in the caller's transaction.

* Products and SKUs go through the catalog's public upsert functions (its events fire, the
  pricing version moves); prices through `catalog.set_list_prices` on the mapped price list.
* 1C's Ид ↔ our id is kept in the connector framework's external-id map: `product` (1C
  product → our product), `sku` (1C product or `product#characteristic` → our SKU).
* An unknown product whose code (Артикул, else its Ид) names an existing SKU is linked to it,
  not created again — connecting a catalog that already exists.
* Per field, the ownership policy decides (`integrations.merge`, roles turned around: here
  1C writes to us): `ours` fields keep our value after creation, `theirs` take 1C's, `shared`
  take 1C's change unless ours changed since the last import too — a conflict, reported per
  row, ours kept.
* Every row runs in a savepoint: a bad row is reported (1C's Ид + reason) and undone alone.
* Re-importing the same file writes nothing: unchanged values, links and prices are skipped.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog import service as catalog
from tradeflow.connectors.commerceml.cml import (
    CatalogFile,
    OfferRow,
    Problem,
    ProductRow,
    currency_code,
    to_minor,
)
from tradeflow.connectors.commerceml.connector import CommerceMLConfig
from tradeflow.errors import ProblemError
from tradeflow.integrations import external_ids
from tradeflow.integrations.merge import plan_merge
from tradeflow.integrations.plugins import Ownership
from tradeflow.kit.currency import MINOR_UNITS

PRODUCT, SKU = "product", "sku"
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
MAX_PROBLEMS = 500
_FLIP: dict[Ownership, Ownership] = {"ours": "theirs", "theirs": "ours", "shared": "shared"}


@dataclass
class ImportResult:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, ext_id: str, reason: str) -> None:
        self.counts["problems"] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(ext_id, reason[:500]))


class RowError(Exception):
    """One row of a 1C file cannot be applied; reported with its Ид, the rest go on."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
        )
    if isinstance(exc, ProblemError):
        return exc.detail or exc.title
    if isinstance(exc, IntegrityError):
        # e.g. 1C's Ид is already linked to another of our records.
        return f"conflicts with existing data: {str(exc.orig).splitlines()[0]}"
    return str(exc)


def sku_code(article: str | None, ext_id: str) -> str:
    """Our SKU code: the Артикул when it is a valid code, else 1C's Ид made into one."""
    if article and CODE.match(article):
        return article
    cleaned = re.sub(r"[^A-Za-z0-9._/-]", "-", ext_id).strip("-._/")[:64]
    return cleaned or uuid.uuid5(uuid.NAMESPACE_URL, ext_id).hex


class CatalogImport:
    def __init__(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        connector_id: uuid.UUID,
        config: CommerceMLConfig,
        *,
        on_row: Callable[[], None] | None = None,
    ) -> None:
        self.on_row = on_row  # progress (the CLI's bar): called after each row
        self.session = session
        self.tenant_id = tenant_id
        self.connector_id = connector_id
        self.config = config
        self.result = ImportResult()
        # The external-id map as this import sees it: read in bulk up front, kept current as
        # rows link things, so a row costs no look-up and an unchanged link no write.
        self.links: dict[tuple[str, str], external_ids.Link | None] = {}
        self._touched: list[tuple[str, str]] = []

    async def _prefetch(self, object_type: str, ext_ids: list[str]) -> None:
        wanted = sorted({e for e in ext_ids if (object_type, e) not in self.links})
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            found = await external_ids.links_by_external(
                self.session, self.tenant_id, self.connector_id, object_type, chunk
            )
            for ext_id in chunk:
                self.links[(object_type, ext_id)] = found.get(ext_id)

    async def _known(self, object_type: str, ext_id: str) -> external_ids.Link | None:
        if (object_type, ext_id) not in self.links:
            await self._prefetch(object_type, [ext_id])
        return self.links[(object_type, ext_id)]

    # -- merge by ownership --------------------------------------------------------------------
    def _merge(
        self,
        prefix: str,
        incoming: dict[str, Any],
        current: dict[str, Any],
        link: external_ids.Link | None,
        ext_id: str,
    ) -> dict[str, Any]:
        """The fields to write: 1C is the writing side here, so the framework's merge runs with
        the roles turned around (its `ours` is 1C, its `theirs` is us)."""
        plan = plan_merge(
            ours=incoming,
            theirs=current,
            last_ours=link.last_theirs if link else None,
            last_theirs=link.last_ours if link else None,
            ownership=lambda name: _FLIP[self.config.owner(f"{prefix}.{name}")],
        )
        for conflict in plan.conflicts:
            self.result.counts["conflicts"] += 1
            self.result.problem(
                ext_id,
                f"conflict on {prefix}.{conflict.field}: 1C sent {conflict.ours!r}, Tradeflow "
                f"has {conflict.theirs!r} (both changed since the last import; ours kept)",
            )
        return plan.writes

    # -- products ----------------------------------------------------------------------------------
    def _product_fields(self, row: ProductRow) -> dict[str, Any]:
        return {"name": row.name, "description": row.description, "active": not row.deleted}

    def _product_attributes(self, row: ProductRow) -> dict[str, Any]:
        attributes: dict[str, Any] = {"1c_id": row.id}
        if row.article:
            attributes["1c_article"] = row.article
        if row.group:
            attributes["1c_group"] = row.group
        return attributes

    def _sku_fields(self, name: str, unit: str | None, active: bool) -> dict[str, Any]:
        return {"name": name, "unit": (unit or "each")[:20], "active": active}

    async def _product(self, row: ProductRow) -> None:
        incoming = self._product_fields(row)
        sku_incoming = self._sku_fields(row.name, row.unit, not row.deleted)
        product_link = await self._known(PRODUCT, row.id)
        sku_link = await self._known(SKU, row.id)
        product_id: uuid.UUID | None = uuid.UUID(product_link.our_id) if product_link else None
        sku_id: uuid.UUID | None = uuid.UUID(sku_link.our_id) if sku_link else None
        code = sku_code(row.article, row.id)
        if product_id is None and sku_id is None:
            existing = await catalog.sku_facts_by_code(self.session, self.tenant_id, code)
            if existing is not None:
                # The seller's catalog already has it: link, do not create a second one.
                product_id, sku_id = existing.product_id, existing.id
                self.result.counts["linked"] += 1
            elif not self.config.create_products:
                raise RowError("not in the catalog, and this connector does not create products")
        if product_id is None and sku_id is not None:
            facts = await catalog.sku_facts(self.session, self.tenant_id, sku_id)
            product_id = facts.product_id if facts else None
        if product_id is None:
            product_id, _ = await catalog.upsert_product(
                self.session,
                self.tenant_id,
                product_id=None,
                changes={**incoming, "attributes": self._product_attributes(row)},
            )
            self.result.counts["products_created"] += 1
            product_now = incoming
        else:
            facts_p = await catalog.product_facts(self.session, self.tenant_id, product_id)
            if facts_p is None:
                raise RowError(f"its product {product_id} no longer exists in Tradeflow")
            current = {k: getattr(facts_p, k) for k in incoming}
            writes = self._merge(PRODUCT, incoming, current, product_link, row.id)
            if writes:
                _, changed = await catalog.upsert_product(
                    self.session, self.tenant_id, product_id=product_id, changes=writes
                )
                if changed:
                    self.result.counts["products_updated"] += 1
            product_now = {**current, **writes}
        if sku_id is None:
            sku_id, _ = await catalog.upsert_sku(
                self.session,
                self.tenant_id,
                sku_id=None,
                product_id=product_id,
                changes={"code": code, **sku_incoming, "attributes": {"1c_id": row.id}},
            )
            self.result.counts["skus_created"] += 1
            sku_now = sku_incoming
        else:
            sku_now = await self._update_sku(sku_id, sku_incoming, sku_link, row.id)
        await self._link(PRODUCT, product_id, row.id, product_now, incoming)
        await self._link(SKU, sku_id, row.id, sku_now, sku_incoming)

    async def _update_sku(
        self,
        sku_id: uuid.UUID,
        incoming: dict[str, Any],
        link: external_ids.Link | None,
        ext_id: str,
    ) -> dict[str, Any]:
        facts = await catalog.sku_facts(self.session, self.tenant_id, sku_id)
        if facts is None:
            raise RowError(f"its SKU {sku_id} no longer exists in Tradeflow")
        current = {k: getattr(facts, k) for k in incoming}
        writes = self._merge(SKU, incoming, current, link, ext_id)
        if writes:
            _, changed = await catalog.upsert_sku(
                self.session,
                self.tenant_id,
                sku_id=sku_id,
                product_id=facts.product_id,
                changes=writes,
            )
            if changed:
                self.result.counts["skus_updated"] += 1
        return {**current, **writes}

    async def _link(
        self,
        object_type: str,
        our_id: uuid.UUID,
        ext_id: str,
        ours: dict[str, Any],
        theirs: dict[str, Any],
    ) -> None:
        key = (object_type, ext_id)
        known = self.links.get(key)
        if (
            known is not None
            and known.our_id == str(our_id)
            and known.last_ours == ours
            and known.last_theirs == theirs
        ):
            return
        self._touched.append(key)
        self.links[key] = external_ids.Link(object_type, str(our_id), ext_id, ours, theirs)
        await external_ids.record_link(
            self.session,
            self.tenant_id,
            self.connector_id,
            object_type,
            our_id=str(our_id),
            external_id=ext_id,
            ours=ours,
            theirs=theirs,
        )

    # -- offers: variants and prices ---------------------------------------------------------------
    async def _offer_sku(self, offer: OfferRow) -> uuid.UUID:
        link = await self._known(SKU, offer.id)
        variant = offer.variant_id
        if link is not None:
            if variant is not None and offer.name:
                await self._update_sku(
                    uuid.UUID(link.our_id),
                    self._sku_fields(offer.name, offer.unit, not offer.deleted),
                    link,
                    offer.id,
                )
            return uuid.UUID(link.our_id)
        if variant is None:
            raise RowError("unknown product: send import.xml with it before its offers")
        product = await self._known(PRODUCT, offer.product_id)
        if product is None:
            raise RowError(f"the variant's product {offer.product_id} is not imported yet")
        code = sku_code(offer.article, variant)
        existing = await catalog.sku_facts_by_code(self.session, self.tenant_id, code)
        incoming = self._sku_fields(
            offer.name or f"{code} ({', '.join(offer.characteristics.values())})",
            offer.unit,
            not offer.deleted,
        )
        if existing is not None and str(existing.product_id) == product.our_id:
            sku_id = existing.id
            self.result.counts["linked"] += 1
        elif not self.config.create_products:
            raise RowError("an unknown variant, and this connector does not create SKUs")
        else:
            attributes: dict[str, Any] = {"1c_id": offer.id}
            if offer.characteristics:
                attributes["1c_characteristics"] = dict(offer.characteristics)
            sku_id, _ = await catalog.upsert_sku(
                self.session,
                self.tenant_id,
                sku_id=None,
                product_id=uuid.UUID(product.our_id),
                changes={"code": code, **incoming, "attributes": attributes},
            )
            self.result.counts["skus_created"] += 1
        await self._link(SKU, sku_id, offer.id, incoming, incoming)
        return sku_id

    def _price_list_for(
        self, file: CatalogFile, type_id: str, shown: str | None
    ) -> uuid.UUID | None:
        mapping = self.config.price_types
        if type_id in mapping:
            return mapping[type_id]
        declared = file.price_types.get(type_id)
        for name in (declared.name if declared else None, shown):
            if name and name in mapping:
                return mapping[name]
        return None

    async def _prices(
        self,
        file: CatalogFile,
        offer: OfferRow,
        sku_id: uuid.UUID,
        wanted: dict[uuid.UUID, dict[uuid.UUID, int]],
        currencies: dict[uuid.UUID, str | None],
    ) -> None:
        staged: list[tuple[uuid.UUID, int]] = []
        for price in offer.prices:
            list_id = self._price_list_for(file, price.price_type_id, price.price_type_name)
            if list_id is None:
                self.result.counts["prices_ignored"] += 1
                continue
            if list_id not in currencies:
                currencies[list_id] = await catalog.price_list_currency(
                    self.session, self.tenant_id, list_id
                )
            list_currency = currencies[list_id]
            if list_currency is None:
                raise RowError(f"price type {price.price_type_id} maps to a missing price list")
            declared = file.price_types.get(price.price_type_id)
            raw = price.currency or (declared.currency if declared else None)
            currency = currency_code(raw) if raw else self.config.default_currency
            if currency is None:
                raise RowError(f"unknown currency {raw!r}")
            if currency != list_currency:
                raise RowError(
                    f"price in {currency}, but price list {list_id} is in {list_currency}"
                )
            try:
                minor = to_minor(price.amount, MINOR_UNITS.get(currency, 2))
            except ValueError as exc:
                raise RowError(f"price {price.amount!r}: {exc}") from exc
            staged.append((list_id, minor))
        for list_id, minor in staged:
            wanted.setdefault(list_id, {})[sku_id] = minor

    # -- the whole file ----------------------------------------------------------------------------
    async def apply(
        self, file: CatalogFile, *, start: int = 0, stop: int | None = None
    ) -> ImportResult:
        """Apply the file's rows `start:stop` (products first, then offers): a large file is
        imported in steps, one transaction each, as 1C's `progress` answers allow."""
        if start == 0:
            for problem in file.problems:
                self.result.problem(problem.id, problem.reason)
        rows = len(file.products)
        products = file.products[start:stop]
        offers = file.offers[max(0, start - rows) : None if stop is None else max(0, stop - rows)]
        await self._prefetch(PRODUCT, [p.id for p in products] + [o.product_id for o in offers])
        await self._prefetch(SKU, [p.id for p in products] + [o.id for o in offers])
        for row in products:
            await self._row(row.id, self._product(row))
        self.result.counts["products"] = len(products)
        wanted: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
        currencies: dict[uuid.UUID, str | None] = {}
        for offer in offers:
            await self._row(offer.id, self._offer(file, offer, wanted, currencies))
        self.result.counts["offers"] = len(offers)
        for list_id, prices in wanted.items():
            changed = await catalog.set_list_prices(self.session, self.tenant_id, list_id, prices)
            self.result.counts["prices_changed"] += len(changed)
            self.result.counts["prices_unchanged"] += len(prices) - len(changed)
        return self.result

    async def _offer(
        self,
        file: CatalogFile,
        offer: OfferRow,
        wanted: dict[uuid.UUID, dict[uuid.UUID, int]],
        currencies: dict[uuid.UUID, str | None],
    ) -> None:
        sku_id = await self._offer_sku(offer)
        await self._prices(file, offer, sku_id, wanted, currencies)

    async def _row(self, ext_id: str, work: Any) -> None:
        """Run one row in a savepoint: its failure is reported and undone, the rest stands."""
        counted = Counter(self.result.counts)
        self._touched = []
        try:
            async with self.session.begin_nested():
                await work
        except (RowError, ValidationError, ProblemError, ValueError, IntegrityError) as exc:
            self.result.counts = counted  # what the row did is undone: so are its counts
            for key in self._touched:  # and its links: read them again if needed
                self.links.pop(key, None)
            self.result.problem(ext_id, _reason(exc))
        if self.on_row is not None:
            self.on_row()
