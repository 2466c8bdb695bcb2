"""Every query of the orders context.

All statements are scoped to one tenant through `_t` (and row-level security enforces
the same underneath). The hot path — placing an order — sends plain SQL on the session's
driver connection (`tradeflow.db.driver_connection`), inside the same transaction: the
active tax rates in one statement, the order with all its lines in another (a CTE), so
SQLAlchemy's per-statement work (several times the statement's own cost) stays off it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from pydantic_core import to_json
from sqlalchemy import ColumnElement, Select, Table, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.db import driver_connection
from tradeflow.kit.pagination import PageRequest, paginate
from tradeflow.orders.models import (
    Invoice,
    InvoiceCounter,
    InvoiceSettlement,
    Order,
    OrderLine,
    TaxRate,
)

OPEN_INVOICE_STATUSES = ("open", "partially_paid")
# Table-level (Core) statements for the hot path: cached once, no ORM entity processing.
_ORDERS = cast(Table, Order.__table__)
_LINES = cast(Table, OrderLine.__table__)
_TAX = cast(Table, TaxRate.__table__)

_ACTIVE_TAX_RATES = (
    "SELECT id, code, rate, is_default FROM tax_rates WHERE tenant_id = $1 AND active ORDER BY code"
)
_ORDER_COLUMNS = (
    "id", "tenant_id", "customer_id", "currency", "status", "version", "subtotal_minor",
    "tax_minor", "total_minor", "reference", "notes", "placed_by", "buyer_user_id",
    "spending_limit_minor", "created_at", "updated_at",
)  # fmt: skip
# Sent as one array per column, in this order.
_LINE_COLUMNS = (
    "id", "line_no", "sku", "sku_id", "product_id", "name", "unit", "quantity",
    "unit_price_minor", "tax_code", "tax_rate", "net_minor", "tax_minor", "total_minor",
    "price_rule",
)  # fmt: skip
# The order and its lines in one statement (the lines' foreign key is checked at its end).
_INSERT_ORDER_WITH_LINES = """
WITH o AS (
  INSERT INTO orders (id, tenant_id, customer_id, currency, status, version, subtotal_minor,
                      tax_minor, total_minor, reference, notes, placed_by, buyer_user_id,
                      spending_limit_minor, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
  RETURNING id, tenant_id
)
INSERT INTO order_lines (tenant_id, order_id, id, line_no, sku, sku_id, product_id, name, unit,
                         quantity, unit_price_minor, tax_code, tax_rate, net_minor, tax_minor,
                         total_minor, price_rule)
SELECT o.tenant_id, o.id, l.id, l.line_no, l.sku, l.sku_id, l.product_id, l.name, l.unit,
       l.quantity, l.unit_price_minor, l.tax_code, l.tax_rate, l.net_minor, l.tax_minor,
       l.total_minor, l.price_rule::jsonb
FROM o, unnest($17::uuid[], $18::int[], $19::text[], $20::uuid[], $21::uuid[], $22::text[],
               $23::text[], $24::bigint[], $25::bigint[], $26::text[], $27::numeric[],
               $28::bigint[], $29::bigint[], $30::bigint[], $31::text[])
  AS l(id, line_no, sku, sku_id, product_id, name, unit, quantity, unit_price_minor, tax_code,
       tax_rate, net_minor, tax_minor, total_minor, price_rule)
"""


def session_tenant() -> ColumnElement[Any]:
    """The tenant the session's transaction runs as (what RLS uses), as a SQL expression."""
    return func.nullif(func.current_setting("app.tenant_id", True), "").cast(UUID(as_uuid=True))


class OrdersRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID | None) -> None:
        """`tenant_id=None`: the session's own tenant (for service calls from other contexts)."""
        self.session = session
        self.tenant_id = tenant_id

    def _t(self, column: Any) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return column == session_tenant()  # type: ignore[no-any-return]
        return column == self.tenant_id  # type: ignore[no-any-return]

    # -- tax rates ----------------------------------------------------------------------------
    async def active_tax_rates(self) -> list[tuple[uuid.UUID, str, Decimal, bool]]:
        assert self.tenant_id is not None
        conn = await driver_connection(self.session)
        rows = await conn.fetch(_ACTIVE_TAX_RATES, self.tenant_id)
        return [(r["id"], r["code"], r["rate"], r["is_default"]) for r in rows]

    async def tax_rate(self, rate_id: uuid.UUID) -> TaxRate | None:
        stmt = select(TaxRate).where(self._t(TaxRate.tenant_id), TaxRate.id == rate_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def tax_rate_by_code(self, code: str) -> TaxRate | None:
        stmt = select(TaxRate).where(self._t(TaxRate.tenant_id), TaxRate.code == code)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def clear_default_tax_rate(self, *, except_id: uuid.UUID | None = None) -> None:
        stmt = update(TaxRate).where(self._t(TaxRate.tenant_id), TaxRate.is_default.is_(True))
        if except_id is not None:
            stmt = stmt.where(TaxRate.id != except_id)
        await self.session.execute(stmt.values(is_default=False, updated_at=func.now()))

    async def list_tax_rates(
        self, page: PageRequest, *, active: bool | None = None
    ) -> tuple[list[TaxRate], str | None]:
        stmt = select(TaxRate).where(self._t(TaxRate.tenant_id))
        if active is not None:
            stmt = stmt.where(TaxRate.active.is_(active))
        return await paginate(self.session, stmt, page, order_by=[TaxRate.id])

    def add(self, row: Any) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    # -- orders -------------------------------------------------------------------------------
    async def insert_order(self, values: dict[str, Any], lines: Sequence[dict[str, Any]]) -> None:
        """The order and its lines, one statement."""
        conn = await driver_connection(self.session)
        await conn.execute(
            _INSERT_ORDER_WITH_LINES,
            *(values[c] for c in _ORDER_COLUMNS),
            *(
                [to_json(line[c]).decode() for line in lines]
                if c == "price_rule"
                else [line[c] for line in lines]
                for c in _LINE_COLUMNS
            ),
        )

    async def order(self, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        stmt = select(Order).where(self._t(Order.tenant_id), Order.id == order_id)
        if for_update:
            stmt = stmt.with_for_update()
        else:
            # Re-read the row from the database even if the session holds it already.
            stmt = stmt.execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def order_lines(self, order_id: uuid.UUID) -> list[OrderLine]:
        stmt = (
            select(OrderLine)
            .where(self._t(OrderLine.tenant_id), OrderLine.order_id == order_id)
            .order_by(OrderLine.line_no)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def update_order(self, order: Order, values: dict[str, Any]) -> None:
        """Write `values` and bump the version; the row is already locked by `order(for_update)`."""
        values = {**values, "version": order.version + 1, "updated_at": func.now()}
        stmt = (
            update(Order)
            .where(self._t(Order.tenant_id), Order.id == order.id)
            .values(**values)
            .returning(Order.version, Order.updated_at)
        )
        row = (await self.session.execute(stmt)).one()
        for key, value in values.items():
            if key not in ("version", "updated_at"):
                setattr(order, key, value)
        # Keep the identity-map copy in step without another SELECT.
        order.version, order.updated_at = row.version, row.updated_at

    async def list_orders(
        self,
        page: PageRequest,
        *,
        customer_id: uuid.UUID | None = None,
        status: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> tuple[list[Order], str | None]:
        stmt: Select[Any] = select(Order).where(self._t(Order.tenant_id))
        if customer_id is not None:
            stmt = stmt.where(Order.customer_id == customer_id)
        if status is not None:
            stmt = stmt.where(Order.status == status)
        if created_from is not None:
            stmt = stmt.where(Order.created_at >= created_from)
        if created_to is not None:
            stmt = stmt.where(Order.created_at < created_to)
        return await paginate(self.session, stmt, page, order_by=[Order.id])

    async def lock_customer_credit(self, customer_id: uuid.UUID) -> None:
        """Serialise confirmations of one customer, so two cannot both pass the credit check."""
        digest = hashlib.blake2b(
            f"credit|{self.tenant_id}|{customer_id}".encode(), digest_size=8
        ).digest()
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(:id)"),
            {"id": int.from_bytes(digest, "big", signed=True)},
        )

    # -- invoices -----------------------------------------------------------------------------
    async def next_invoice_number(self, year: int) -> int:
        """Take the next number of (tenant, year); the counter row stays locked until commit."""
        assert self.tenant_id is not None
        stmt = (
            pg_insert(InvoiceCounter)
            .values(tenant_id=self.tenant_id, year=year, last_number=1)
            .on_conflict_do_update(
                index_elements=[InvoiceCounter.tenant_id, InvoiceCounter.year],
                set_={"last_number": InvoiceCounter.last_number + 1},
            )
            .returning(InvoiceCounter.last_number)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def insert_invoice(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(Invoice).values(**values))

    async def invoice(self, invoice_id: uuid.UUID, *, for_update: bool = False) -> Invoice | None:
        stmt = select(Invoice).where(self._t(Invoice.tenant_id), Invoice.id == invoice_id)
        stmt = stmt.with_for_update() if for_update else stmt
        stmt = stmt.execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def invoice_for_order(self, order_id: uuid.UUID) -> Invoice | None:
        stmt = select(Invoice).where(self._t(Invoice.tenant_id), Invoice.order_id == order_id)
        stmt = stmt.execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def invoice_ids_for_orders(self, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
        if not order_ids:
            return {}
        stmt = select(Invoice.order_id, Invoice.id).where(
            self._t(Invoice.tenant_id), Invoice.order_id.in_(order_ids)
        )
        return {r.order_id: r.id for r in await self.session.execute(stmt)}

    async def update_invoice(self, invoice: Invoice, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(Invoice)
            .where(self._t(Invoice.tenant_id), Invoice.id == invoice.id)
            .values(**values, updated_at=func.now())
        )
        for key, value in values.items():
            setattr(invoice, key, value)

    async def open_receivables(self, customer_id: uuid.UUID) -> int:
        """What the customer owes on open invoices: Σ (total − captured)."""
        stmt = select(
            func.coalesce(func.sum(Invoice.total_minor - Invoice.amount_paid_minor), 0)
        ).where(
            self._t(Invoice.tenant_id),
            Invoice.customer_id == customer_id,
            Invoice.status.in_(OPEN_INVOICE_STATUSES),
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def list_invoices(
        self,
        page: PageRequest,
        *,
        customer_id: uuid.UUID | None = None,
        status: str | None = None,
        order_id: uuid.UUID | None = None,
    ) -> tuple[list[Invoice], str | None]:
        stmt: Select[Any] = select(Invoice).where(self._t(Invoice.tenant_id))
        if customer_id is not None:
            stmt = stmt.where(Invoice.customer_id == customer_id)
        if status is not None:
            stmt = stmt.where(Invoice.status == status)
        if order_id is not None:
            stmt = stmt.where(Invoice.order_id == order_id)
        return await paginate(self.session, stmt, page, order_by=[Invoice.id])

    # -- settlements (payment facts) ----------------------------------------------------------
    async def record_settlement(self, values: dict[str, Any]) -> bool:
        """Record a payment fact once per source event; False if it was recorded before."""
        stmt = (
            pg_insert(InvoiceSettlement)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[InvoiceSettlement.event_id])
            .returning(InvoiceSettlement.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None
