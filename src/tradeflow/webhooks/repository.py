"""Every query of the webhooks context, scoped to one tenant."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.kit.pagination import PageRequest, paginate
from tradeflow.webhooks.models import WebhookEndpoint


class WebhooksRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def add(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        endpoint.tenant_id = self.tenant_id
        self.session.add(endpoint)
        await self.session.flush()
        await self.session.refresh(endpoint)
        return endpoint

    async def get(self, endpoint_id: uuid.UUID, *, lock: bool = False) -> WebhookEndpoint | None:
        stmt = select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == self.tenant_id, WebhookEndpoint.id == endpoint_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(self, page: PageRequest) -> tuple[list[WebhookEndpoint], str | None]:
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == self.tenant_id)
        return await paginate(self.session, stmt, page, order_by=[WebhookEndpoint.id])

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        await self.session.delete(endpoint)
        await self.session.flush()
