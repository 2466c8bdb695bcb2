"""Every query of the customers context, scoped to one tenant in one place (`_scoped`).

Row-level security enforces the same wall under a tenant session; the
explicit filter keeps system sessions (worker, CLI) honest and lets
PostgreSQL use the `(tenant_id, …)` indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.customers.models import BuyerProfile, Customer, CustomerGroup
from tradeflow.kit.pagination import PageRequest, paginate

M = TypeVar("M", Customer, CustomerGroup, BuyerProfile)


class CustomersRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _scoped(self, model: type[M]) -> Select[M]:
        return select(model).where(model.tenant_id == self.tenant_id)

    async def add(self, row: Customer | CustomerGroup | BuyerProfile) -> None:
        row.tenant_id = self.tenant_id
        self.session.add(row)
        await self.session.flush()

    # -- groups -----------------------------------------------------------------------------
    async def group(self, group_id: uuid.UUID) -> CustomerGroup | None:
        stmt = self._scoped(CustomerGroup).where(CustomerGroup.id == group_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def group_by_name(self, name: str) -> CustomerGroup | None:
        stmt = self._scoped(CustomerGroup).where(func.lower(CustomerGroup.name) == name.lower())
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_groups(
        self, page: PageRequest, *, name: str | None = None
    ) -> tuple[list[CustomerGroup], str | None]:
        stmt = self._scoped(CustomerGroup)
        if name:
            stmt = stmt.where(CustomerGroup.name.ilike(f"%{_escape_like(name)}%", escape="\\"))
        return await paginate(self.session, stmt, page, order_by=[CustomerGroup.id])

    async def group_in_use(self, group_id: uuid.UUID) -> bool:
        stmt = select(self._scoped(Customer).where(Customer.group_id == group_id).exists())
        return bool((await self.session.execute(stmt)).scalar())

    async def delete_group(self, group: CustomerGroup) -> None:
        await self.session.delete(group)
        await self.session.flush()

    # -- customers --------------------------------------------------------------------------
    async def customer(
        self, customer_id: uuid.UUID, *, for_update: bool = False
    ) -> Customer | None:
        stmt = self._scoped(Customer).where(Customer.id == customer_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def customer_with_group(
        self, customer_id: uuid.UUID
    ) -> tuple[Customer, CustomerGroup | None] | None:
        stmt = (
            select(Customer, CustomerGroup)
            .outerjoin(CustomerGroup, CustomerGroup.id == Customer.group_id)
            .where(Customer.tenant_id == self.tenant_id, Customer.id == customer_id)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def list_customers(
        self,
        page: PageRequest,
        *,
        ids: Sequence[uuid.UUID] | None = None,
        group_id: uuid.UUID | None = None,
        currency: str | None = None,
        active: bool | None = None,
        name: str | None = None,
    ) -> tuple[list[Customer], str | None]:
        stmt = self._scoped(Customer)
        if ids is not None:
            stmt = stmt.where(Customer.id.in_(ids))
        if group_id is not None:
            stmt = stmt.where(Customer.group_id == group_id)
        if currency is not None:
            stmt = stmt.where(Customer.currency == currency)
        if active is not None:
            stmt = stmt.where(Customer.active == active)
        if name:
            stmt = stmt.where(Customer.name.ilike(f"%{_escape_like(name)}%", escape="\\"))
        return await paginate(self.session, stmt, page, order_by=[Customer.id])

    # -- buyers -----------------------------------------------------------------------------
    async def buyer(self, user_id: uuid.UUID, *, for_update: bool = False) -> BuyerProfile | None:
        stmt = self._scoped(BuyerProfile).where(BuyerProfile.user_id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_buyers(
        self, customer_id: uuid.UUID, page: PageRequest, *, role: str | None = None
    ) -> tuple[list[BuyerProfile], str | None]:
        stmt = self._scoped(BuyerProfile).where(BuyerProfile.customer_id == customer_id)
        if role is not None:
            stmt = stmt.where(BuyerProfile.role == role)
        return await paginate(self.session, stmt, page, order_by=[BuyerProfile.user_id])

    async def approvers(self, customer_id: uuid.UUID, roles: Sequence[str]) -> list[uuid.UUID]:
        stmt = (
            select(BuyerProfile.user_id)
            .where(
                BuyerProfile.tenant_id == self.tenant_id,
                BuyerProfile.customer_id == customer_id,
                BuyerProfile.role.in_(roles),
            )
            .order_by(BuyerProfile.user_id)
        )
        return list((await self.session.execute(stmt)).scalars().all())


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
