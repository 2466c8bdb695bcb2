"""Sync work on the events engine: the `connector` transport.

Each connector instance is a subscriber of kind `connector` whose event
filter is its plugin's `event_types`. The delivery engine claims deliveries
for it like for a webhook endpoint — with retries and backoff, `Retry-After`,
dead letters, per-aggregate order, a circuit breaker, pause and replay — and
calls `deliver`, outside any transaction, for one event at a time. `deliver`
turns the event into pushes (`integrations.sync`) or journal exports, each
of which writes to our database only in its own short transactions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from tradeflow.events.outbox import publish
from tradeflow.events.registry import (
    AttemptResult,
    Claimed,
    TransportDeps,
    register_transport,
)
from tradeflow.integrations import documents, journal, service
from tradeflow.integrations.events import ConnectorResyncRequested
from tradeflow.integrations.models import ConnectorInstance
from tradeflow.integrations.plugins import (
    ConnectorError,
    ConnectorPlugin,
    DocumentConnector,
    JournalConnector,
    ObjectType,
    RateLimited,
    RemoteTimeout,
    RemoteUnavailable,
)
from tradeflow.integrations.repository import IntegrationsRepository
from tradeflow.integrations.sync import DocumentSync
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow
from tradeflow.ledger import service as ledger

log = structlog.get_logger(__name__)

KIND = service.SUBSCRIBER_KIND
RESYNC_PAGES_PER_ATTEMPT = 10  # 2,000 entries per attempt keeps it well inside the lease

INVOICE_EVENTS = frozenset(
    {"invoice.issued", "order.partially_paid", "order.paid", "order.refunded", "order.cancelled"}
)


class NotReady(ConnectorError):
    """What the event refers to is not visible yet (e.g. another context has not caught up)."""


@dataclass
class _Open:
    fingerprint: str
    plugin: ConnectorPlugin


def _fingerprint(instance: ConnectorInstance) -> str:
    return json.dumps([instance.kind, instance.config, instance.secrets_ciphertext], sort_keys=True)


class ConnectorTransport:
    kind = KIND
    uses_breaker = True

    def __init__(self, deps: TransportDeps) -> None:
        self.settings = deps.settings
        self.db = deps.db
        self.keyring = deps.keyring
        self._open: dict[uuid.UUID, _Open] = {}
        self._retired: list[ConnectorPlugin] = []
        self._lock = asyncio.Lock()

    async def prepare(self, items: Sequence[Claimed]) -> None:
        return None

    async def close(self) -> None:
        for plugin in [*(e.plugin for e in self._open.values()), *self._retired]:
            await plugin.close()
        self._open.clear()
        self._retired.clear()

    async def _plugin(self, instance: ConnectorInstance) -> ConnectorPlugin:
        """One open plugin per instance, reused until its configuration changes."""
        fingerprint = _fingerprint(instance)
        async with self._lock:
            cached = self._open.get(instance.id)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached.plugin
            if cached is not None:
                # Attempts in flight may still use it: close it with the transport, not now.
                self._retired.append(cached.plugin)
            plugin = service.open_plugin(instance, self.keyring)
            await plugin.open()
            self._open[instance.id] = _Open(fingerprint, plugin)
            return plugin

    async def deliver(self, item: Claimed) -> AttemptResult:
        tenant_id = item.event.tenant_id
        async with self.db.tenant_session(tenant_id) as session:
            instance = await IntegrationsRepository(session, tenant_id).instance_by_subscriber(
                item.subscriber_id
            )
            await session.commit()
        if instance is None:
            return AttemptResult(outcome="failure", error="no connector instance for subscriber")
        # The whole attempt, however many remote calls it makes, stays inside the lease.
        budget = self.settings.webhooks_timeout_seconds
        error: str | None = None
        try:
            detail = await asyncio.wait_for(self._run(instance, item), timeout=budget)
            result = AttemptResult(outcome="success", response_body=detail[:500])
        except RateLimited as exc:
            error = str(exc)
            result = AttemptResult(
                outcome="failure", status_code=429, error=error, retry_after=exc.retry_after
            )
        except (RemoteTimeout, TimeoutError) as exc:
            error = f"timeout: {exc}"
            result = AttemptResult(outcome="timeout", error=error)
        except RemoteUnavailable as exc:
            error = str(exc)
            result = AttemptResult(
                outcome="connect_error" if exc.status_code is None else "failure",
                status_code=exc.status_code,
                error=error,
            )
        except ConnectorError as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = AttemptResult(outcome="failure", status_code=exc.status_code, error=error)
        await self._record(instance, error)
        return result

    async def _record(self, instance: ConnectorInstance, error: str | None) -> None:
        async with self.db.tenant_session(instance.tenant_id) as session:
            await IntegrationsRepository(session, instance.tenant_id).record_result(
                instance.id, error=error, at=utcnow()
            )
            await session.commit()

    async def _run(self, instance: ConnectorInstance, item: Claimed) -> str:
        plugin = await self._plugin(instance)
        if isinstance(plugin, DocumentConnector):
            return await self._documents(instance, plugin, item)
        if isinstance(plugin, JournalConnector):
            return await self._journal(instance, plugin, item)
        return f"{instance.kind} has nothing to do for {item.event.type}"

    # -- document connectors ---------------------------------------------------------------------
    async def _documents(
        self, instance: ConnectorInstance, plugin: DocumentConnector, item: Claimed
    ) -> str:
        sync = DocumentSync(
            db=self.db,
            tenant_id=instance.tenant_id,
            connector_id=instance.id,
            connector=plugin,
            lease_seconds=self.settings.delivery_lease_seconds,
            # Waiting in place for an unanswered create to settle is cheaper than a retry,
            # as long as the rest of the attempt still fits its time budget.
            max_settle_wait=self.settings.webhooks_timeout_seconds / 3,
        )
        event = item.event
        payload = event.payload
        if event.type == "sync.conflict_resolved":
            return await sync.apply_resolution(uuid.UUID(str(payload["conflict_id"])))
        done: list[str] = []
        if event.type in ("customer.created", "customer.updated"):
            if plugin.supports(ObjectType.CUSTOMER):
                ext = await self._customer(sync, plugin, uuid.UUID(str(payload["customer_id"])))
                done.append(f"customer {ext}")
        elif event.type in INVOICE_EVENTS:
            invoice_id = payload.get("invoice_id")
            if invoice_id is not None and plugin.supports(ObjectType.INVOICE):
                ext = await self._invoice(sync, plugin, uuid.UUID(str(invoice_id)))
                done.append(f"invoice {ext}")
        elif event.type == "payment.captured":
            if plugin.supports(ObjectType.PAYMENT):
                doc = documents.payment_document(payload, occurred_at=event.occurred_at.isoformat())
                doc["invoice_external_id"] = await self._invoice_ref(
                    sync, plugin, doc["invoice_id"]
                )
                res = await sync.push(ObjectType.PAYMENT, doc["id"], doc)
                done.append(f"payment {res.external_id} {res.action}")
        elif event.type == "refund.succeeded" and plugin.supports(ObjectType.CREDIT_NOTE):
            doc = documents.credit_note_document(payload, occurred_at=event.occurred_at.isoformat())
            doc["invoice_external_id"] = await self._invoice_ref(sync, plugin, doc["invoice_id"])
            doc["payment_external_id"] = await self._external_id(
                sync, ObjectType.PAYMENT, doc["payment_id"]
            )
            res = await sync.push(ObjectType.CREDIT_NOTE, doc["id"], doc)
            done.append(f"credit note {res.external_id} {res.action}")
        return "; ".join(done) or f"nothing to sync for {event.type}"

    async def _customer(
        self, sync: DocumentSync, plugin: DocumentConnector, customer_id: uuid.UUID
    ) -> str:
        async def load() -> dict[str, Any]:
            async with self.db.tenant_session(sync.tenant_id) as session:
                doc = await documents.customer_document(session, customer_id)
                await session.commit()
            return doc

        res = await sync.push(ObjectType.CUSTOMER, str(customer_id), load)
        return res.external_id

    async def _invoice(
        self, sync: DocumentSync, plugin: DocumentConnector, invoice_id: uuid.UUID
    ) -> str:
        async def read() -> dict[str, Any]:
            async with self.db.tenant_session(sync.tenant_id) as session:
                try:
                    doc = await documents.invoice_document(session, invoice_id)
                except Exception as exc:
                    raise NotReady(f"invoice {invoice_id} is not readable yet: {exc}") from exc
                await session.commit()
            return doc

        customer_ext = None
        if plugin.supports(ObjectType.CUSTOMER):
            # The invoice refers to the customer by their id: make sure it is there first
            # (customer changes travel on their own events, so a known id is enough).
            customer_id = (await read())["customer_id"]
            known = await self._external_id(sync, ObjectType.CUSTOMER, customer_id)
            customer_ext = known or await self._customer(sync, plugin, uuid.UUID(customer_id))

        async def load() -> dict[str, Any]:
            doc = await read()
            doc["customer_external_id"] = customer_ext
            return doc

        res = await sync.push(ObjectType.INVOICE, str(invoice_id), load)
        return res.external_id

    async def _invoice_ref(
        self, sync: DocumentSync, plugin: DocumentConnector, invoice_id: str | None
    ) -> str | None:
        if invoice_id is None or not plugin.supports(ObjectType.INVOICE):
            return None
        known = await self._external_id(sync, ObjectType.INVOICE, invoice_id)
        return known or await self._invoice(sync, plugin, uuid.UUID(invoice_id))

    async def _external_id(
        self, sync: DocumentSync, object_type: ObjectType, our_id: str
    ) -> str | None:
        async with self.db.tenant_session(sync.tenant_id) as session:
            ref = await IntegrationsRepository(session, sync.tenant_id).ref(
                sync.connector_id, object_type.value, our_id
            )
            await session.commit()
        return ref.external_id if ref is not None else None

    # -- journal connectors ----------------------------------------------------------------------
    async def _journal(
        self, instance: ConnectorInstance, plugin: JournalConnector, item: Claimed
    ) -> str:
        tenant_id = instance.tenant_id
        if item.event.type == "connector.resync_requested":
            return await self._resync(instance, plugin, item.event.payload)
        if item.event.type != "ledger.entry_posted":
            return f"nothing to export for {item.event.type}"
        async with self.db.tenant_session(tenant_id) as session:
            accounts = await journal.chart(session, tenant_id)
            await session.commit()
        entry = journal.entry_from_posted(item.event.payload, accounts)
        written = await plugin.append([entry])
        return f"entry {entry.id} {'appended' if written else 'already present'}"

    async def _resync(
        self, instance: ConnectorInstance, plugin: JournalConnector, payload: dict[str, Any]
    ) -> str:
        """Export the ledger's entries page by page; a long export continues in a new event."""
        tenant_id = instance.tenant_id
        since = payload.get("since")
        cursor: str | None = payload.get("cursor")
        written = 0
        for _ in range(RESYNC_PAGES_PER_ATTEMPT):
            async with self.db.tenant_session(tenant_id) as session:
                accounts = await journal.chart(session, tenant_id)
                page = await ledger.list_entries(
                    session,
                    tenant_id=tenant_id,
                    filters=ledger.EntryFilters(
                        posted_from=datetime.fromisoformat(since) if since else None
                    ),
                    page=PageRequest(cursor=cursor, limit=200),
                )
                await session.commit()
            written += await plugin.append(journal.entry_from_view(e, accounts) for e in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return f"journal exported: {written} entries appended"
        async with self.db.tenant_session(tenant_id) as session:
            await publish(
                session,
                ConnectorResyncRequested(
                    connector_id=instance.id,
                    since=datetime.fromisoformat(since) if since else None,
                    cursor=cursor,
                ),
                tenant_id=tenant_id,
                aggregate_id=instance.id,
                target_subscriber_id=instance.subscriber_id,
            )
            await session.commit()
        return f"journal export continues: {written} entries appended so far"


register_transport(KIND, ConnectorTransport)
