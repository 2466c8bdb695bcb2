"""1C downloads orders with `type=sale&mode=query`: confirmed orders as CommerceML documents
(totals in the currency's minor units, our ids, 1C's Ид for SKUs it sent us); `mode=success`
acknowledges them, an order not acknowledged comes again, a changed order comes again.

The orders' changes travel as events through a real delivery worker to the connector's handler.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from httpx import AsyncClient

from connectors.commerceml.support import OneC, create_connector
from customers.support import Seller
from integrations.support import FAST, eventually, running_worker
from orders.factories import World, act, make_world, order_body, place
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

NS = ""  # documents are written without a namespace
BOLT_1C_ID = "f1000000-1f3c-11ef-8c4a-00155d012a01"
LINKING_CATALOG = f"""<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация ВерсияСхемы="2.08">
  <Каталог><Товары>
    <Товар><Ид>{BOLT_1C_ID}</Ид><Артикул>BOLT-1</Артикул><Наименование>BOLT-1</Наименование>
      <БазоваяЕдиница>pc</БазоваяЕдиница></Товар>
  </Товары></Каталог>
</КоммерческаяИнформация>""".encode()


def _documents(body: bytes) -> list[ET.Element]:
    root = ET.fromstring(body)  # our own output
    assert root.tag == "КоммерческаяИнформация"
    return root.findall("Документ")


def _requisites(node: ET.Element) -> dict[str, str]:
    return {
        str(r.findtext("Наименование")): str(r.findtext("Значение"))
        for r in node.findall("ЗначенияРеквизитов/ЗначениеРеквизита")
    }


async def _confirmed_order(client: AsyncClient, world: World, currency: str) -> dict[str, Any]:
    r = await place(
        client, world, order_body(world, ("BOLT-1", 2), ("NUT-2", 3), currency=currency)
    )
    assert r.status_code == 201, r.text
    r = await act(client, r, "confirm", headers=world.staff)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize(
    ("currency", "total", "line"), [("RUB", "33.00", "24.00"), ("JPY", "3300", "2400")]
)
async def test_orders_go_to_1c_until_acknowledged(
    app_client: AsyncClient,
    committed: Database,
    keyring: Keyring,
    settings: Settings,
    currency: str,
    total: str,
    line: str,
) -> None:
    client = app_client
    world = await make_world(committed, currency=currency)
    seller = Seller(world.tenant_id, world.staff)
    connector = await create_connector(client, seller, default_currency=currency)
    one_c = OneC(client, str(connector["id"]))
    assert await one_c.exchange_catalog(("import.xml", LINKING_CATALOG)) == ["success"]

    order = await _confirmed_order(client, world, currency)
    waiting = await place(client, world, order_body(world, ("GEAR-3", 1), currency=currency))
    assert waiting.status_code == 201  # placed, not confirmed: not a sale yet

    sale = OneC(client, str(connector["id"]))
    async with running_worker(settings.model_copy(update=FAST), committed, keyring):

        async def sent() -> list[ET.Element]:
            r = await sale.query_orders()
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/xml")
            return _documents(r.content)

        documents = await eventually(sent, timeout=20)
    assert len(documents) == 1
    doc = documents[0]
    assert doc.findtext("Ид") == order["id"]
    assert doc.findtext("Номер") == order["id"]
    assert doc.findtext("ХозОперация") == "Заказ товара"
    assert doc.findtext("Валюта") == currency
    # 2 × 10.00 + 3 × 2.50 = 27.50 net, 20 % tax 5.50: 33.00 (in yen: 3300, no decimals).
    assert doc.findtext("Сумма") == total
    assert doc.findtext("Контрагенты/Контрагент/Ид") == str(world.customer_id)
    assert doc.findtext("Контрагенты/Контрагент/Роль") == "Покупатель"
    goods = {g.findtext("Артикул"): g for g in doc.findall("Товары/Товар")}
    assert goods["BOLT-1"].findtext("Ид") == BOLT_1C_ID  # the Ид 1C sent for it
    assert goods["BOLT-1"].findtext("Количество") == "2"
    assert goods["BOLT-1"].findtext("Сумма") == line
    nut_id = goods["NUT-2"].findtext("Ид")
    assert nut_id is not None
    assert uuid.UUID(nut_id)  # not known to 1C: our SKU id
    requisites = _requisites(doc)
    assert requisites["Статус заказа"] == "invoiced"
    assert requisites["Отменен"] == "false"
    assert requisites["Номер счета"]

    # Not acknowledged: the same order again.
    again = _documents((await sale.query_orders()).content)
    assert [d.findtext("Ид") for d in again] == [order["id"]]
    # Acknowledged: nothing more.
    assert (await sale.success()).text == "success"
    assert _documents((await sale.query_orders()).content) == []

    # The order changes (cancelled): it goes to 1C again, with its new status.
    r = await client.get(f"/v1/orders/{order['id']}", headers=world.staff)
    r = await act(client, r, "cancel", headers=world.staff, body={"reason": "customer asked"})
    assert r.status_code == 200, r.text
    async with running_worker(settings.model_copy(update=FAST), committed, keyring):

        async def cancelled() -> list[ET.Element]:
            return _documents((await sale.query_orders()).content)

        documents = await eventually(cancelled, timeout=20)
    assert _requisites(documents[0])["Отменен"] == "true"

    # The audit shows the queries and which were acknowledged.
    r = await client.get(
        f"/v1/connectors/{connector['id']}/commerceml/exchanges",
        params={"status": "acknowledged"},
        headers=world.staff,
    )
    acknowledged = r.json()["items"]
    assert len(acknowledged) == 1
    assert acknowledged[0]["orders"][0]["order_id"] == order["id"]
