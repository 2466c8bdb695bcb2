"""Orders as CommerceML 2 documents (`ХозОперация` "Заказ товара"), for 1C's `mode=query`.

Which orders: every order whose latest change (recorded from order events by
`handlers.py`) is in one of the instance's export states and has not been
acknowledged by this instance's 1C at that version. Acknowledgement is
`mode=success` after the query; an order not acknowledged is sent again next
time — at least once to 1C, which recognises a document it already has by its
Ид (our order id) and Номер and updates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.connectors.commerceml import cml
from tradeflow.connectors.commerceml.importer import SKU
from tradeflow.connectors.commerceml.repository import CommerceMLRepository
from tradeflow.customers import service as customers
from tradeflow.identity.principal import Principal
from tradeflow.integrations import external_ids
from tradeflow.integrations.documents import decimal_text
from tradeflow.orders import service as orders

PAID = frozenset({"paid", "fulfilled", "refunded"})
FINAL = frozenset({"fulfilled", "cancelled", "refunded"})


@dataclass(frozen=True, slots=True)
class OrdersDocument:
    body: bytes
    sent: list[tuple[uuid.UUID, int]]  # (order id, version) in the document


def _reader(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> Principal:
    """Who reads the orders: the connector instance, with read access to orders only."""
    return Principal(
        kind="api_key", id=connector_id, tenant_id=tenant_id, scopes=frozenset({"orders:read"})
    )


def _rate(rate: Decimal) -> str:
    text = format(rate.normalize(), "f")
    return text


async def build(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    *,
    statuses: Sequence[str],
    limit: int,
    now: datetime,
) -> OrdersDocument:
    repo = CommerceMLRepository(session, tenant_id)
    pending = await repo.unacknowledged(connector_id, statuses, limit)
    root = cml.new_document(now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    reader = _reader(tenant_id, connector_id)
    sent: list[tuple[uuid.UUID, int]] = []
    for order_id, version in pending:
        order = await orders.get_order(session, reader, order_id)
        sku_ids = [str(line.sku_id) for line in order.lines]
        links = await external_ids.links_by_ours(session, tenant_id, connector_id, SKU, sku_ids)
        customer = await customers.get_customer(session, order.customer_id)
        invoice_number = None
        if order.invoice_id is not None:
            invoice_number = (await orders.get_invoice(session, order.invoice_id)).number
        _document(root, order, customer, links, invoice_number)
        # The version acknowledged is the one recorded when we looked, never older than sent.
        sent.append((order_id, max(version, order.version)))
    return OrdersDocument(cml.serialize(root), sent)


def _document(
    root: Any,
    order: Any,
    customer: Any,
    links: dict[str, external_ids.Link],
    invoice_number: str | None,
) -> None:
    e = cml.element
    currency = order.currency
    doc = e(root, "Документ")
    e(doc, "Ид", str(order.id))
    e(doc, "Номер", str(order.id))
    created = order.created_at.astimezone(UTC)
    e(doc, "Дата", created.strftime("%Y-%m-%d"))
    e(doc, "Время", created.strftime("%H:%M:%S"))
    e(doc, "ХозОперация", "Заказ товара")
    e(doc, "Роль", "Продавец")
    e(doc, "Валюта", currency)
    e(doc, "Курс", "1")
    e(doc, "Сумма", decimal_text(order.total_minor, currency))
    parties = e(doc, "Контрагенты")
    party = e(parties, "Контрагент")
    e(party, "Ид", str(customer.id))
    e(party, "Наименование", customer.name)
    e(party, "ПолноеНаименование", customer.name)
    if customer.tax_id:
        e(party, "ИНН", customer.tax_id)
    e(party, "Роль", "Покупатель")
    if order.tax_minor:
        taxes = e(doc, "Налоги")
        tax = e(taxes, "Налог")
        e(tax, "Наименование", "НДС")
        e(tax, "УчтеноВСумме", "true")
        e(tax, "Сумма", decimal_text(order.tax_minor, currency))
    comment = " / ".join(x for x in (order.reference, order.notes) if x)
    if comment:
        e(doc, "Комментарий", comment)
    goods = e(doc, "Товары")
    for line in order.lines:
        link = links.get(str(line.sku_id))
        item = e(goods, "Товар")
        e(item, "Ид", link.external_id if link else str(line.sku_id))
        e(item, "Артикул", line.sku)
        e(item, "Наименование", line.name)
        e(item, "БазоваяЕдиница", line.unit, НаименованиеПолное=line.unit)
        e(item, "ЦенаЗаЕдиницу", decimal_text(line.unit_price_minor, currency))
        e(item, "Количество", str(line.quantity))
        e(item, "Сумма", decimal_text(line.total_minor, currency))
        if line.tax_minor or line.tax_rate:
            rates = e(item, "СтавкиНалогов")
            rate = e(rates, "СтавкаНалога")
            e(rate, "Наименование", "НДС")
            e(rate, "Ставка", _rate(line.tax_rate))
            taxes = e(item, "Налоги")
            tax = e(taxes, "Налог")
            e(tax, "Наименование", "НДС")
            e(tax, "УчтеноВСумме", "true")
            e(tax, "Сумма", decimal_text(line.tax_minor, currency))
        props = e(item, "ЗначенияРеквизитов")
        cml.requisite(props, "ВидНоменклатуры", "Товар")
        cml.requisite(props, "ТипНоменклатуры", "Товар")
        cml.requisite(props, "Tradeflow SKU id", str(line.sku_id))
    props = e(doc, "ЗначенияРеквизитов")
    cml.requisite(props, "Статус заказа", order.status)
    cml.requisite(props, "Отменен", "true" if order.status == "cancelled" else "false")
    cml.requisite(props, "Заказ оплачен", "true" if order.status in PAID else "false")
    cml.requisite(props, "Финальный статус", "true" if order.status in FINAL else "false")
    cml.requisite(props, "Дата изменения статуса", order.updated_at.astimezone(UTC).isoformat())
    cml.requisite(props, "Tradeflow order id", str(order.id))
    if invoice_number:
        cml.requisite(props, "Номер счета", invoice_number)
