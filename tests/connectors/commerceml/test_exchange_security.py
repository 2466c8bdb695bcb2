"""The exchange's walls: credentials, the session cookie, tenants, and hostile XML."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from connectors.commerceml.conftest import Shop, make_shop
from connectors.commerceml.support import OneC, data, exchanges
from customers.support import count
from tradeflow.db import Database

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<КоммерческаяИнформация><Каталог><Товары><Товар><Ид>x</Ид>
<Наименование>&lol4;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>""".encode()

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<КоммерческаяИнформация><Каталог><Товары><Товар><Ид>x</Ид>
<Наименование>&xxe;</Наименование></Товар></Товары></Каталог></КоммерческаяИнформация>""".encode()


async def _products(db: Database, shop: Shop) -> int:
    return await count(
        db, "SELECT count(*) FROM products WHERE tenant_id = :t", t=shop.seller.tenant_id
    )


async def test_wrong_password_is_a_failure(client: AsyncClient, shop: Shop) -> None:
    r = await OneC(client, shop.connector_id, password="not-the-password").checkauth("catalog")
    assert r.status_code == 401
    assert r.text.split("\n")[0] == "failure"
    assert r.headers["content-type"].startswith("text/plain")
    r = await OneC(client, shop.connector_id, login="someone-else").checkauth("catalog")
    assert r.text.startswith("failure")
    r = await OneC(client, shop.connector_id).checkauth("catalog")
    assert r.status_code == 200
    assert r.text.split("\n")[0] == "success"


async def test_without_a_session_cookie_every_step_is_refused(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    one_c = OneC(client, shop.connector_id)
    for mode in ("init", "file", "import"):
        r = await one_c.call(
            "POST" if mode == "file" else "GET",
            b"<x/>",
            type="catalog",
            mode=mode,
            filename="import.xml",
        )
        assert r.status_code == 401, mode
        assert r.text.startswith("failure"), mode
    # A made-up cookie is no better.
    one_c.cookie = ("tradeflow_cml", "forged")
    r = await one_c.call(type="sale", mode="query")
    assert r.status_code == 401
    # Neither credentials nor a cookie: the exchange does not even admit it exists.
    r = await client.get(
        f"/v1/connectors/{shop.connector_id}/commerceml/exchange",
        params={"type": "sale", "mode": "query"},
    )
    assert r.status_code == 404
    assert r.text.startswith("failure")
    assert await _products(rolled_back, shop) == 0


async def test_a_session_of_one_instance_does_not_open_another(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    other = await make_shop(client, rolled_back)  # another tenant, same login and password
    one_c = OneC(client, shop.connector_id)
    assert (await one_c.checkauth("catalog")).text.startswith("success")
    intruder = OneC(client, other.connector_id)
    intruder.cookie = one_c.cookie
    r = await intruder.call(type="catalog", mode="init")
    assert r.status_code == 401
    # An unknown instance, or one that is not a CommerceML connector: 404.
    r = await OneC(client, str(uuid.uuid4())).checkauth("catalog")
    assert r.status_code == 404
    # The audit of another tenant's instance: 404 through the API.
    r = await client.get(
        f"/v1/connectors/{other.connector_id}/commerceml/exchanges", headers=shop.seller.headers
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_billion_laughs_and_external_entities_are_refused_and_nothing_is_written(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    for name, body in (("import.xml", BILLION_LAUGHS), ("import.xml", EXTERNAL_ENTITY)):
        answers = await OneC(client, shop.connector_id).exchange_catalog((name, body))
        assert answers[0].startswith("failure\n"), answers
        assert "DTD" in answers[0]
    assert await _products(rolled_back, shop) == 0
    audit = await exchanges(client, shop.seller, shop.connector_id)
    assert [e["status"] for e in audit] == ["failure", "failure"]
    assert all("DTD" in (e["error"] or "") for e in audit)


async def test_a_malformed_file_changes_nothing(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    truncated = data("import.xml")[:-200]
    answers = await OneC(client, shop.connector_id).exchange_catalog(("import.xml", truncated))
    assert answers[0].startswith("failure\nnot well-formed XML")
    assert await _products(rolled_back, shop) == 0
    audit = await exchanges(client, shop.seller, shop.connector_id)
    assert audit[-1]["status"] == "failure"
    assert audit[-1]["size_bytes"] == len(truncated)


async def test_a_file_over_the_limit_is_refused_unparsed(
    client: AsyncClient, rolled_back: Database
) -> None:
    shop = await make_shop(client, rolled_back, max_file_bytes=10_000)
    big = data("offers.xml") + b" " * 3000
    assert len(big) > 10_000
    one_c = OneC(client, shop.connector_id)
    await one_c.checkauth("catalog")
    await one_c.init("catalog")
    r = await one_c.call("POST", big[:6000], type="catalog", mode="file", filename="offers.xml")
    assert r.text == "success"
    r = await one_c.call("POST", big[6000:], type="catalog", mode="file", filename="offers.xml")
    assert r.text.startswith("failure")
    r = await one_c.call(type="catalog", mode="import", filename="offers.xml")
    assert r.text.startswith("failure")  # nothing of it was kept


async def test_attachments_are_answered_but_not_kept_and_bad_file_names_fail(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    one_c = OneC(client, shop.connector_id)
    await one_c.checkauth("catalog")
    await one_c.init("catalog")
    for mode in ("file", "import"):
        r = await one_c.call(
            "POST", b"\x89PNG", type="catalog", mode=mode, filename="import_files/1.PNG"
        )
        assert r.text == "success", mode
        for bad in ("", "import\x00.xml"):
            r = await one_c.call("POST", b"<x/>", type="catalog", mode=mode, filename=bad)
            assert r.text == "failure\nfilename is missing or invalid.", (mode, bad)
    uploads = "SELECT count(*) FROM commerceml_uploads WHERE tenant_id = :t"
    assert await count(rolled_back, uploads, t=shop.seller.tenant_id) == 0
    assert await exchanges(client, shop.seller, shop.connector_id) == []


async def test_password_guessing_is_rate_limited_like_logins(
    app: Any, client: AsyncClient, shop: Shop
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"ratelimit_auth": "3/minute"})
    guesser = OneC(client, shop.connector_id, password="guess")
    answers = [(await guesser.checkauth("catalog")).status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]


async def test_a_paused_connector_refuses_imports_and_queries(
    client: AsyncClient, rolled_back: Database, shop: Shop
) -> None:
    r = await client.post(f"/v1/connectors/{shop.connector_id}/pause", headers=shop.seller.headers)
    assert r.status_code == 200, r.text
    answers = await OneC(client, shop.connector_id).exchange_catalog(
        ("import.xml", data("import.xml"))
    )
    assert answers == ["failure\nThe exchange is paused in Tradeflow."]
    assert (await OneC(client, shop.connector_id).query_orders()).text.startswith("failure")
    assert await _products(rolled_back, shop) == 0
