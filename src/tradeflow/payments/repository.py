"""Every query of the payments context; tenant scoping is applied here, once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.kit.models import Base
from tradeflow.kit.pagination import PageRequest, paginate
from tradeflow.payments.models import (
    Payment,
    ProcessorConfigRow,
    ProcessorOperation,
    ProcessorWebhook,
    Refund,
)

T = TypeVar("T", bound=Base)

OPEN_OPERATION = ("pending", "unknown")


class PaymentsRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def add(self, obj: Base) -> None:
        self.session.add(obj)
        await self.session.flush()

    async def remove(self, obj: Base) -> None:
        await self.session.delete(obj)
        await self.session.flush()

    async def _one(self, stmt: Select[T], *, for_update: bool) -> T | None:
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    # -- processor configs -------------------------------------------------------------------
    async def config(self, processor: str) -> ProcessorConfigRow | None:
        return await self._one(
            select(ProcessorConfigRow).where(
                ProcessorConfigRow.tenant_id == self.tenant_id,
                ProcessorConfigRow.processor == processor,
            ),
            for_update=False,
        )

    async def configs(self) -> list[ProcessorConfigRow]:
        rows = await self.session.execute(
            select(ProcessorConfigRow)
            .where(ProcessorConfigRow.tenant_id == self.tenant_id)
            .order_by(ProcessorConfigRow.processor)
        )
        return list(rows.scalars())

    # -- payments ----------------------------------------------------------------------------
    def payments_query(self) -> Select[Payment]:
        return select(Payment).where(Payment.tenant_id == self.tenant_id)

    async def payment(
        self,
        payment_id: uuid.UUID,
        *,
        for_update: bool = False,
        customer_id: uuid.UUID | None = None,
    ) -> Payment | None:
        stmt = self.payments_query().where(Payment.id == payment_id)
        if customer_id is not None:
            stmt = stmt.where(Payment.customer_id == customer_id)
        return await self._one(stmt, for_update=for_update)

    async def list_payments(
        self,
        page: PageRequest,
        *,
        invoice_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        customer_id: uuid.UUID | None = None,
        status: str | None = None,
        processor: str | None = None,
    ) -> tuple[list[Payment], str | None]:
        stmt = self.payments_query()
        for column, value in (
            (Payment.invoice_id, invoice_id),
            (Payment.order_id, order_id),
            (Payment.customer_id, customer_id),
            (Payment.status, status),
            (Payment.processor, processor),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        return await paginate(self.session, stmt, page, order_by=[Payment.id])

    async def payment_by_processor_id(
        self, processor: str, processor_payment_id: str, *, for_update: bool = False
    ) -> Payment | None:
        return await self._one(
            self.payments_query().where(
                Payment.processor == processor,
                Payment.processor_payment_id == processor_payment_id,
            ),
            for_update=for_update,
        )

    async def invoice_payments(self, invoice_id: uuid.UUID) -> list[Payment]:
        rows = await self.session.execute(
            self.payments_query().where(Payment.invoice_id == invoice_id)
        )
        return list(rows.scalars())

    async def lock_invoice(self, invoice_id: uuid.UUID) -> None:
        """Serialise intents for one invoice, so two cannot both take its open balance."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 74650401))"),
            {"k": f"{self.tenant_id}:invoice:{invoice_id}"},
        )

    # -- refunds -----------------------------------------------------------------------------
    def refunds_query(self) -> Select[Refund]:
        return select(Refund).where(Refund.tenant_id == self.tenant_id)

    async def refund(
        self,
        refund_id: uuid.UUID,
        *,
        for_update: bool = False,
        customer_id: uuid.UUID | None = None,
    ) -> Refund | None:
        stmt = self.refunds_query().where(Refund.id == refund_id)
        if customer_id is not None:
            stmt = stmt.where(Refund.customer_id == customer_id)
        return await self._one(stmt, for_update=for_update)

    async def list_refunds(
        self,
        page: PageRequest,
        *,
        payment_id: uuid.UUID | None = None,
        invoice_id: uuid.UUID | None = None,
        customer_id: uuid.UUID | None = None,
        status: str | None = None,
    ) -> tuple[list[Refund], str | None]:
        stmt = self.refunds_query()
        for column, value in (
            (Refund.payment_id, payment_id),
            (Refund.invoice_id, invoice_id),
            (Refund.customer_id, customer_id),
            (Refund.status, status),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        return await paginate(self.session, stmt, page, order_by=[Refund.id])

    async def refund_by_processor_id(
        self, processor: str, processor_refund_id: str, *, for_update: bool = False
    ) -> Refund | None:
        return await self._one(
            self.refunds_query().where(
                Refund.processor == processor, Refund.processor_refund_id == processor_refund_id
            ),
            for_update=for_update,
        )

    async def pending_refunds_minor(self, payment_id: uuid.UUID) -> int:
        total = await self.session.execute(
            select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
                Refund.tenant_id == self.tenant_id,
                Refund.payment_id == payment_id,
                Refund.status == "pending",
            )
        )
        return int(total.scalar_one())

    # -- processor operations ----------------------------------------------------------------
    async def operation(
        self, operation_id: uuid.UUID, *, for_update: bool = False
    ) -> ProcessorOperation | None:
        return await self._one(
            select(ProcessorOperation).where(
                ProcessorOperation.tenant_id == self.tenant_id,
                ProcessorOperation.id == operation_id,
            ),
            for_update=for_update,
        )

    async def operation_by_request(self, caller: str, key: str) -> ProcessorOperation | None:
        return await self._one(
            select(ProcessorOperation).where(
                ProcessorOperation.tenant_id == self.tenant_id,
                ProcessorOperation.request_caller == caller,
                ProcessorOperation.request_key == key,
            ),
            for_update=False,
        )

    async def operations(
        self,
        payment_ids: Sequence[uuid.UUID],
        *,
        kind: str | None = None,
        open_only: bool = False,
    ) -> list[ProcessorOperation]:
        stmt = select(ProcessorOperation).where(
            ProcessorOperation.tenant_id == self.tenant_id,
            ProcessorOperation.payment_id.in_(list(payment_ids)),
        )
        if kind is not None:
            stmt = stmt.where(ProcessorOperation.kind == kind)
        if open_only:
            stmt = stmt.where(ProcessorOperation.status.in_(OPEN_OPERATION))
        rows = await self.session.execute(stmt.order_by(ProcessorOperation.id))
        return list(rows.scalars())

    async def open_capture_minor(self, payment_id: uuid.UUID) -> int:
        total = await self.session.execute(
            select(func.coalesce(func.sum(ProcessorOperation.amount_minor), 0)).where(
                ProcessorOperation.tenant_id == self.tenant_id,
                ProcessorOperation.payment_id == payment_id,
                ProcessorOperation.kind == "capture",
                ProcessorOperation.status.in_(OPEN_OPERATION),
            )
        )
        return int(total.scalar_one())

    # -- inbound webhooks --------------------------------------------------------------------
    async def store_webhook(self, values: dict[str, Any]) -> uuid.UUID | None:
        """Insert once per external id; on a repeat, count it and return None."""
        inserted = await self.session.execute(
            insert(ProcessorWebhook)
            .values(tenant_id=self.tenant_id, **values)
            .on_conflict_do_nothing(constraint="uq_processor_webhooks_external")
            .returning(ProcessorWebhook.id)
        )
        webhook_id = inserted.scalar_one_or_none()
        if webhook_id is None:
            await self.session.execute(
                text(
                    "UPDATE processor_webhooks SET deliveries = deliveries + 1 "
                    "WHERE tenant_id = :t AND processor = :p AND external_id = :e"
                ),
                {"t": self.tenant_id, "p": values["processor"], "e": values["external_id"]},
            )
        return webhook_id

    async def webhook(
        self, webhook_id: uuid.UUID, *, for_update: bool = False
    ) -> ProcessorWebhook | None:
        return await self._one(
            select(ProcessorWebhook).where(
                ProcessorWebhook.tenant_id == self.tenant_id, ProcessorWebhook.id == webhook_id
            ),
            for_update=for_update,
        )

    async def delete_operation(self, operation_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(ProcessorOperation).where(
                ProcessorOperation.tenant_id == self.tenant_id,
                ProcessorOperation.id == operation_id,
            )
        )


# -- cross-tenant look-ups (system session only) -----------------------------------------------


async def config_for_account(
    session: AsyncSession, processor: str, account_ref: str
) -> ProcessorConfigRow | None:
    """Which tenant's config an inbound webhook is for, before any tenant is known."""
    rows = await session.execute(
        select(ProcessorConfigRow).where(
            ProcessorConfigRow.processor == processor,
            ProcessorConfigRow.account_ref == account_ref,
        )
    )
    return rows.scalar_one_or_none()


async def due_operations(
    session: AsyncSession, *, now: datetime, stale_before: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, operation) pairs to resolve: unknown and due, or pending for too long.

    A `pending` operation is normally a request still talking to the processor;
    one older than `stale_before` lost its process between the two transactions.
    """
    rows = await session.execute(
        select(ProcessorOperation.tenant_id, ProcessorOperation.id)
        .where(
            (
                (ProcessorOperation.status == "unknown")
                & (func.coalesce(ProcessorOperation.next_check_at, now) <= now)
            )
            | (
                (ProcessorOperation.status == "pending")
                & (ProcessorOperation.created_at < stale_before)
            )
        )
        .order_by(ProcessorOperation.created_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows.all()]


async def expired_authorizations(
    session: AsyncSession,
    *,
    created_before: datetime,
    refused_since: datetime,
    limit: int,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, payment) pairs of manual authorisations nothing was captured from, created
    before `created_before`, with no call in flight and no void refused since `refused_since`."""
    busy = (
        select(ProcessorOperation.id)
        .where(
            ProcessorOperation.payment_id == Payment.id,
            ProcessorOperation.status.in_(OPEN_OPERATION)
            | (
                (ProcessorOperation.kind == "void")
                & (ProcessorOperation.created_at >= refused_since)
            ),
        )
        .exists()
    )
    rows = await session.execute(
        select(Payment.tenant_id, Payment.id)
        .where(
            Payment.capture_method == "manual",
            Payment.status == "requires_capture",
            Payment.created_at < created_before,
            ~busy,
        )
        .order_by(Payment.created_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows.all()]
