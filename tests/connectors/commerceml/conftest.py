"""A seller trading in roubles: a wholesale customer group with its price list, a base (retail)
price list, a wholesale and a retail customer, and a CommerceML connector mapping 1C's price
types onto the two lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from connectors.commerceml.support import RETAIL_TYPE_NAME, WHOLESALE_TYPE_ID, create_connector
from customers.support import Seller, create_customer, create_group, make_seller
from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring


@dataclass
class Shop:
    seller: Seller
    wholesale_list: str
    retail_list: str
    wholesale_customer: str
    retail_customer: str
    connector: dict[str, Any]

    @property
    def connector_id(self) -> str:
        return str(self.connector["id"])


async def make_shop(client: AsyncClient, db: Database, **config: Any) -> Shop:
    seller = await make_seller(db)
    group = await create_group(client, seller, name="Опт")
    lists = {}
    for name, group_id in (("Оптовый прайс", group["id"]), ("Розница", None)):
        r = await client.post(
            "/v1/price-lists",
            json={"name": name, "currency": "RUB", "customer_group_id": group_id},
            headers=seller.headers,
        )
        assert r.status_code == 201, r.text
        lists[name] = r.json()["id"]
    wholesale = await create_customer(
        client, seller, name="ООО «Стройторг»", currency="RUB", group_id=group["id"]
    )
    retail = await create_customer(client, seller, name="ИП Петров", currency="RUB")
    connector = await create_connector(
        client,
        seller,
        price_types={WHOLESALE_TYPE_ID: lists["Оптовый прайс"], RETAIL_TYPE_NAME: lists["Розница"]},
        **config,
    )
    return Shop(
        seller, lists["Оптовый прайс"], lists["Розница"], wholesale["id"], retail["id"], connector
    )


@pytest.fixture
async def shop(client: AsyncClient, rolled_back: Database) -> Shop:
    return await make_shop(client, rolled_back)


@pytest.fixture
async def app_client(
    committed: Database, settings: Settings, keyring: Keyring
) -> AsyncIterator[AsyncClient]:
    """A client of an app on real commits (for the worker and the CLI, which have their own
    connections)."""
    app = create_app(settings, committed, keyring=keyring)
    transport = ASGITransport(app=app, client=("127.0.0.1", 12345))
    async with AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
