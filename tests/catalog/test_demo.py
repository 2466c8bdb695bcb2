"""The demo seeder for customers and the catalog: complete, repeatable, and priced as documented."""

from __future__ import annotations

from httpx import AsyncClient

from catalog.support import quote
from customers.support import make_seller
from tradeflow.catalog import demo
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.demo import _context_seeders
from tradeflow.kit.keyring import Keyring


async def test_demo_seed_is_complete_and_repeatable(
    client: AsyncClient, rolled_back: Database, settings: Settings, keyring: Keyring
) -> None:
    assert demo.seed in _context_seeders()
    seller = await make_seller(rolled_back)
    creds = {"tenant_id": str(seller.tenant_id)}
    first = await demo.seed(rolled_back, settings, keyring, creds)
    assert first["skus"] == ["BOLT-M8-40", "BOLT-M8-50", "NUT-M8", "DRILL-18V"]
    assert first["currency"] == "EUR"
    again = await demo.seed(rolled_back, settings, keyring, {**creds, **first})
    assert again == first  # nothing new, the same passwords kept

    login = await client.post(
        "/v1/auth/login", json={"email": first["buyer_email"], "password": first["buyer_password"]}
    )
    assert login.status_code == 200, login.text
    buyer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    expected = {
        ("NUT-M8", 1): (450, "contract"),
        ("DRILL-18V", 1): (16900, "price_list"),
        ("BOLT-M8-40", 1): (1226, "group_discount"),  # 1290 less 5 % = 1225.5, half-up
        ("BOLT-M8-40", 10): (1131, "group_discount"),  # 1190 less 5 % = 1130.5
    }
    for (sku, quantity), (price, kind) in expected.items():
        r = await quote(client, buyer, sku, quantity)
        assert r.status_code == 200, r.text
        assert (r.json()["unit_price_minor"], r.json()["rule"]["kind"]) == (price, kind)
    r = await client.get(
        f"/v1/customers/{first['customer_id']}/buyers",
        params={"role": "approver"},
        headers=seller.headers,
    )
    assert [b["email"] for b in r.json()["items"]] == [first["approver_email"]]
