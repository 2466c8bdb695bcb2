"""1C uploads import.xml and offers.xml through the real exchange: products, SKUs (variants
too) and prices appear, quotes show the new prices, a repeat changes nothing, bad rows are
reported with 1C's Ид and the rest still applies."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from catalog.support import quote
from connectors.commerceml.conftest import Shop
from connectors.commerceml.support import OneC, data, exchanges
from customers.support import count
from tradeflow.db import Database

BOLT, NUT, TSHIRT = (
    "b1111111-1f3c-11ef-8c4a-00155d012a01",
    "b2222222-1f3c-11ef-8c4a-00155d012a01",
    "b3333333-1f3c-11ef-8c4a-00155d012a01",
)
FILES = (("import.xml", data("import.xml")), ("offers.xml", data("offers.xml")))


async def _price(client: AsyncClient, shop: Shop, customer: str, sku: str) -> int:
    r = await quote(client, shop.seller.headers, sku, 1, customer)
    assert r.status_code == 200, r.text
    return int(r.json()["unit_price_minor"])


async def _events(db: Database, shop: Shop) -> int:
    return await count(
        db, "SELECT count(*) FROM events WHERE tenant_id = :t", t=shop.seller.tenant_id
    )


async def test_import_creates_the_catalog_and_prices_and_reports_bad_rows(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    one_c = OneC(client, shop.connector_id)
    assert await one_c.exchange_catalog(*FILES) == ["success", "success"]

    # Products and SKUs, with 1C's names (Cyrillic), units and groups.
    r = await client.get("/v1/products", params={"limit": 100}, headers=shop.seller.headers)
    products = {p["name"]: p for p in r.json()["items"]}
    assert set(products) == {
        "Болт М8×50 оцинкованный",
        "Гайка М8 шестигранная",
        "Футболка рабочая хлопковая",
    }
    bolt = products["Болт М8×50 оцинкованный"]
    assert bolt["attributes"]["1c_group"] == "Болты и гайки"
    assert [(s["code"], s["unit"]) for s in bolt["skus"]] == [("BOLT-M8-50", "шт")]
    shirt_codes = {s["code"] for s in products["Футболка рабочая хлопковая"]["skus"]}
    # The Артикул "ФУТ-001" is no valid SKU code: the base SKU takes 1C's Ид; the variants
    # their own Артикул.
    assert shirt_codes == {TSHIRT, "TS-RED-M", "TS-BLUE-L"}

    # Quotes: the wholesale group's list for the wholesale customer, the base list otherwise.
    assert await _price(client, shop, shop.wholesale_customer, "BOLT-M8-50") == 1250
    assert await _price(client, shop, shop.retail_customer, "BOLT-M8-50") == 1500
    assert await _price(client, shop, shop.wholesale_customer, "NUT-M8") == 320
    assert await _price(client, shop, shop.retail_customer, "NUT-M8") == 400
    assert await _price(client, shop, shop.wholesale_customer, "TS-RED-M") == 45000
    assert await _price(client, shop, shop.wholesale_customer, "TS-BLUE-L") == 45550
    # The variant whose price had too many decimals was not half-created.
    r = await quote(client, shop.seller.headers, "TS-GREEN-S", 1, shop.wholesale_customer)
    assert r.status_code == 404

    # The audit: counts, and each bad row with 1C's Ид and the reason.
    first = await exchanges(client, shop.seller, shop.connector_id)
    assert [(e["filename"], e["status"]) for e in first] == [
        ("import.xml", "success"),
        ("offers.xml", "success"),
    ]
    imported, offered = first[0], first[1]
    assert imported["counts"]["products_created"] == 3
    assert imported["counts"]["skus_created"] == 3
    assert imported["problems"] == [
        {"id": "b4444444-1f3c-11ef-8c4a-00155d012a01", "reason": "a product without Наименование"}
    ]
    assert offered["counts"]["skus_created"] == 2
    assert offered["counts"]["prices_changed"] == 6
    assert offered["counts"]["prices_ignored"] == 1  # "Закупочная" maps to no price list
    reasons = {p["id"]: p["reason"] for p in offered["problems"]}
    assert set(reasons) == {
        f"{TSHIRT}#d0000003-1f3c-11ef-8c4a-00155d012a01",
        "e9999999-1f3c-11ef-8c4a-00155d012a01",
    }
    assert "decimals" in reasons[f"{TSHIRT}#d0000003-1f3c-11ef-8c4a-00155d012a01"]
    assert "unknown product" in reasons["e9999999-1f3c-11ef-8c4a-00155d012a01"]

    # 1C's Ид ↔ our ids are in the connector's external-id map.
    r = await client.get(
        f"/v1/connectors/{shop.connector_id}/external-ids",
        params={"object_type": "sku", "limit": 100},
        headers=shop.seller.headers,
    )
    mapped = {row["external_id"] for row in r.json()["items"]}
    assert {BOLT, NUT, TSHIRT, f"{TSHIRT}#d0000001-1f3c-11ef-8c4a-00155d012a01"} <= mapped

    # The same files again: nothing changes, nothing is published.
    events_before = await _events(rolled_back, shop)
    assert await OneC(client, shop.connector_id).exchange_catalog(*FILES) == [
        "success",
        "success",
    ]
    assert await _events(rolled_back, shop) == events_before
    again = (await exchanges(client, shop.seller, shop.connector_id))[2:]
    for exchange in again:
        changed = {
            k: v
            for k, v in exchange["counts"].items()
            if k.endswith(("_created", "_updated", "_changed"))
        }
        assert not any(changed.values()), exchange["counts"]
    assert again[1]["counts"]["prices_unchanged"] == 6


async def test_a_price_change_reaches_the_quote_and_publishes_one_event(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    one_c = OneC(client, shop.connector_id)
    await one_c.exchange_catalog(*FILES)
    changed = data("offers.xml").replace(
        b"<\xd0\xa6\xd0\xb5\xd0\xbd\xd0\xb0\xd0\x97\xd0\xb0\xd0\x95\xd0\xb4\xd0\xb8\xd0\xbd\xd0\xb8\xd1\x86\xd1\x83>12.50<",
        "<ЦенаЗаЕдиницу>13.75<".encode(),
    )
    assert changed != data("offers.xml")
    before = await count(
        rolled_back,
        "SELECT count(*) FROM events WHERE tenant_id = :t AND type = 'price_list.changed'",
        t=shop.seller.tenant_id,
    )
    assert await OneC(client, shop.connector_id).exchange_catalog(("offers.xml", changed)) == [
        "success"
    ]
    assert await _price(client, shop, shop.wholesale_customer, "BOLT-M8-50") == 1375
    after = await count(
        rolled_back,
        "SELECT count(*) FROM events WHERE tenant_id = :t AND type = 'price_list.changed'",
        t=shop.seller.tenant_id,
    )
    assert after == before + 1


async def test_fields_we_own_are_not_overwritten_by_1c(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    await OneC(client, shop.connector_id).exchange_catalog(FILES[0])
    r = await client.get("/v1/products", params={"limit": 100}, headers=shop.seller.headers)
    bolt = next(p for p in r.json()["items"] if p["skus"][0]["code"] == "BOLT-M8-50")
    # A site editor rewrites the description (ours by default) and the name (shared).
    r = await client.patch(
        f"/v1/products/{bolt['id']}",
        json={"description": "Наше описание для сайта", "name": "Болт М8×50 (сайт)"},
        headers={**shop.seller.headers, "If-Match": "*"},
    )
    assert r.status_code == 200, r.text
    # 1C sends the product again with a new name: a shared field both sides changed.
    renamed = data("import.xml").replace(
        "<Наименование>Болт М8×50 оцинкованный</Наименование>".encode(),
        "<Наименование>Болт М8×50 оцинк. (1С)</Наименование>".encode(),
    )
    assert await OneC(client, shop.connector_id).exchange_catalog(("import.xml", renamed)) == [
        "success"
    ]
    r = await client.get(f"/v1/products/{bolt['id']}", headers=shop.seller.headers)
    assert r.json()["description"] == "Наше описание для сайта"
    assert r.json()["name"] == "Болт М8×50 (сайт)"
    last = (await exchanges(client, shop.seller, shop.connector_id))[-1]
    assert last["counts"]["conflicts"] == 1
    assert any("conflict on product.name" in p["reason"] for p in last["problems"])

    # A field only 1C changed (the nut's name) is taken.
    renamed_nut = data("import.xml").replace(
        "Гайка М8 шестигранная".encode(), "Гайка М8 DIN 934".encode()
    )
    await OneC(client, shop.connector_id).exchange_catalog(("import.xml", renamed_nut))
    r = await client.get("/v1/skus", params={"code": "NUT-M8"}, headers=shop.seller.headers)
    assert r.json()["items"][0]["name"] == "Гайка М8 DIN 934"


async def test_an_existing_sku_with_the_same_code_is_linked_not_duplicated(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    r = await client.post(
        "/v1/products",
        json={"name": "Bolt (ours)", "skus": [{"code": "BOLT-M8-50", "name": "Bolt"}]},
        headers=shop.seller.headers,
    )
    assert r.status_code == 201
    await OneC(client, shop.connector_id).exchange_catalog(FILES[0])
    r = await client.get("/v1/skus", params={"code": "BOLT-M8-50"}, headers=shop.seller.headers)
    assert len(r.json()["items"]) == 1
    first = (await exchanges(client, shop.seller, shop.connector_id))[0]
    assert first["counts"]["linked"] == 1
    assert first["counts"]["products_created"] == 2


async def test_import_may_be_told_not_to_create_products(
    client: AsyncClient, rolled_back: Database
) -> None:
    from connectors.commerceml.conftest import make_shop

    shop = await make_shop(client, rolled_back, create_products=False)
    await OneC(client, shop.connector_id).exchange_catalog(FILES[0])
    r = await client.get("/v1/products", headers=shop.seller.headers)
    assert r.json()["items"] == []
    problems: list[dict[str, Any]] = (await exchanges(client, shop.seller, shop.connector_id))[0][
        "problems"
    ]
    assert len(problems) == 4
    assert all(p["reason"] for p in problems)


async def test_a_large_file_is_imported_in_steps_answered_with_progress(
    client: AsyncClient, rolled_back: Database
) -> None:
    from connectors.commerceml.conftest import make_shop

    shop = await make_shop(client, rolled_back, rows_per_step=2)
    one_c = OneC(client, shop.connector_id)
    assert await one_c.exchange_catalog(FILES[0]) == ["success"]
    assert one_c.steps == 2  # 3 products, 2 per step
    assert await one_c.exchange_catalog(FILES[1]) == ["success"]
    assert one_c.steps == 3  # 6 offers
    audit = await exchanges(client, shop.seller, shop.connector_id)
    assert [(e["filename"], e["status"]) for e in audit] == [
        ("import.xml", "success"),
        ("offers.xml", "success"),
    ]
    assert audit[0]["counts"]["products_created"] == 3
    assert len(audit[0]["problems"]) == 1
    assert audit[1]["counts"]["prices_changed"] == 6
    assert len(audit[1]["problems"]) == 2
    assert await _price(client, shop, shop.wholesale_customer, "TS-BLUE-L") == 45550
