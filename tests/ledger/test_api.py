"""`/v1/ledger` over HTTP: scopes, the contract's shapes, problems, idempotent creates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient

from ledger.support import (
    invoice_payload,
    make_api_key,
    make_customer,
    make_tenant,
    payment_payload,
    post,
)
from tradeflow.db import Database
from tradeflow.kit.ids import uuid7


@pytest.fixture
async def auth(books: Database, tenant: uuid.UUID) -> dict[str, str]:
    token = await make_api_key(books, tenant, {"ledger:read", "ledger:write"})
    return {"Authorization": f"Bearer {token}"}


async def test_scopes_are_required(client: AsyncClient, books: Database, tenant: uuid.UUID) -> None:
    assert (await client.get("/v1/ledger/trial-balance")).status_code == 401
    read_only = await make_api_key(books, tenant, {"ledger:read"})
    headers = {"Authorization": f"Bearer {read_only}"}
    assert (await client.get("/v1/ledger/accounts", headers=headers)).status_code == 200
    r = await client.post(
        "/v1/ledger/accounts", json={"code": "1210", "name": "x", "type": "asset"}, headers=headers
    )
    assert r.status_code == 403
    assert "ledger:write" in r.json()["detail"]
    other = await make_api_key(books, tenant, {"orders:read"})
    r = await client.get("/v1/ledger/trial-balance", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403


async def test_chart_is_seeded_and_extensible(client: AsyncClient, auth: dict[str, str]) -> None:
    r = await client.get("/v1/ledger/accounts", headers=auth)
    assert r.status_code == 200
    keys = {a["system_key"]: a["code"] for a in r.json()["items"]}
    assert keys == {
        "cash": "1000",
        "processor_clearing": "1050",
        "receivables": "1100",
        "tax_payable": "2100",
        "revenue": "4000",
        "refunds": "4100",
        "processor_fees": "6100",
    }
    body = {"code": "3000", "name": "Opening balances", "type": "equity"}
    created = await client.post(
        "/v1/ledger/accounts", json=body, headers={**auth, "Idempotency-Key": "acct-1"}
    )
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["normal_balance"] == "credit"
    assert account["system_key"] is None
    assert created.headers["location"] == f"/v1/ledger/accounts/{account['id']}"
    replay = await client.post(
        "/v1/ledger/accounts", json=body, headers={**auth, "Idempotency-Key": "acct-1"}
    )
    assert replay.json() == account
    taken = await client.post("/v1/ledger/accounts", json=body, headers=auth)
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/ledger-account-code-taken")
    fetched = await client.get(f"/v1/ledger/accounts/{account['id']}", headers=auth)
    assert fetched.json() == account
    equity = await client.get("/v1/ledger/accounts?type=equity", headers=auth)
    assert [a["code"] for a in equity.json()["items"]] == ["3000"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "bad code", "name": "x", "type": "asset"}, "code"),
        ({"code": "9", "name": "x", "type": "income"}, "type"),
        ({"code": "9", "name": "x", "type": "asset", "colour": "red"}, "colour"),
        ({"code": "9", "name": "", "type": "asset"}, "name"),
        ({"code": "9", "name": "   ", "type": "asset"}, "name"),
        ({"code": "9", "name": "nul\u0000", "type": "asset"}, "name"),
        # A lone surrogate is valid JSON (as an escape) but not encodable text.
        ('{"code": "9", "name": "x", "type": "asset", "description": "\\ud800"}', "description"),
    ],
)
async def test_bad_account_input_names_the_field(
    client: AsyncClient, auth: dict[str, str], body: dict[str, Any] | str, field: str
) -> None:
    if isinstance(body, str):
        headers = {**auth, "Content-Type": "application/json"}
        r = await client.post("/v1/ledger/accounts", content=body.encode(), headers=headers)
    else:
        r = await client.post("/v1/ledger/accounts", json=body, headers=auth)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in r.json()["errors"]}


async def test_manual_entry_reversal_and_trial_balance(
    client: AsyncClient, auth: dict[str, str]
) -> None:
    entry_body = {
        "currency": "EUR",
        "description": "Opening cash",
        "lines": [
            {"account_code": "1000", "debit_minor": 50_000},
            {"account_code": "1100", "credit_minor": 50_000, "memo": "moved"},
        ],
    }
    r = await client.post("/v1/ledger/entries", json=entry_body, headers=auth)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["kind"] == "manual"
    assert entry["total_minor"] == 50_000
    assert entry["posted_by"].startswith("api_key:")
    assert [(x["account_code"], x["debit_minor"], x["credit_minor"]) for x in entry["lines"]] == [
        ("1000", 50_000, 0),
        ("1100", 0, 50_000),
    ]
    tb = (await client.get("/v1/ledger/trial-balance", headers=auth)).json()
    assert tb["balanced"] is True
    assert tb["totals"] == [
        {"currency": "EUR", "debit_minor": 50_000, "credit_minor": 50_000, "balanced": True}
    ]
    rev = await client.post(
        f"/v1/ledger/entries/{entry['id']}/reverse",
        json={"description": "typo"},
        headers={**auth, "Idempotency-Key": "rev-1"},
    )
    assert rev.status_code == 201, rev.text
    reversal = rev.json()
    assert reversal["reverses_entry_id"] == entry["id"]
    assert reversal["description"] == "typo"
    assert [(x["debit_minor"], x["credit_minor"]) for x in reversal["lines"]] == [
        (0, 50_000),
        (50_000, 0),
    ]
    replay = await client.post(
        f"/v1/ledger/entries/{entry['id']}/reverse",
        json={"description": "typo"},
        headers={**auth, "Idempotency-Key": "rev-1"},
    )
    assert replay.status_code == 201
    assert replay.json()["id"] == reversal["id"]
    again = await client.post(f"/v1/ledger/entries/{entry['id']}/reverse", headers=auth)
    assert again.status_code == 409
    assert again.json()["reversed_by_entry_id"] == reversal["id"]
    original = (await client.get(f"/v1/ledger/entries/{entry['id']}", headers=auth)).json()
    assert original["reversed_by_entry_id"] == reversal["id"]
    tb = (await client.get("/v1/ledger/trial-balance", headers=auth)).json()
    assert {a["code"]: a["balance_minor"] for a in tb["accounts"]} == {"1000": 0, "1100": 0}
    assert tb["balanced"] is True


@pytest.mark.parametrize(
    ("lines", "slug"),
    [
        (
            [
                {"account_code": "1000", "debit_minor": 100},
                {"account_code": "4000", "credit_minor": 90},
            ],
            "ledger-entry-unbalanced",
        ),
        (
            [
                {"account_code": "1000", "debit_minor": 5},
                {"account_code": "9999", "credit_minor": 5},
            ],
            "ledger-entry-invalid",
        ),
        (
            [
                {"account_code": "1000", "debit_minor": 5, "credit_minor": 5},
                {"account_code": "4000", "credit_minor": 5},
            ],
            "validation-error",
        ),
        ([{"account_code": "1000", "debit_minor": 5}], "validation-error"),
        (
            [
                {"account_code": "1000", "debit_minor": 10**16},
                {"account_code": "4000", "credit_minor": 10**16},
            ],
            "validation-error",
        ),
    ],
    ids=["unbalanced", "unknown-account", "both-sides", "one-line", "too-large"],
)
async def test_bad_manual_entries_write_nothing(
    client: AsyncClient, auth: dict[str, str], lines: list[dict[str, Any]], slug: str
) -> None:
    body = {"currency": "EUR", "description": "bad", "lines": lines}
    r = await client.post("/v1/ledger/entries", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/" + slug)
    listed = await client.get("/v1/ledger/entries", headers=auth)
    assert listed.json()["items"] == []


async def test_entries_by_source_event_and_statement(
    client: AsyncClient, books: Database, tenant: uuid.UUID, auth: dict[str, str]
) -> None:
    customer = await make_customer(books, tenant)
    invoice = invoice_payload(customer_id=customer, total=12_000, tax=2_000)
    event_id = uuid7()
    await post(books, tenant, "invoice.issued", invoice, event_id=event_id)
    await post(
        books,
        tenant,
        "payment.captured",
        payment_payload(invoice_id=invoice["invoice_id"], amount=5_000),
    )
    r = await client.get(f"/v1/ledger/entries?source_event_id={event_id}", headers=auth)
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 1
    assert items[0]["source_event_type"] == "invoice.issued"
    assert items[0]["refs"]["invoice_id"] == invoice["invoice_id"]
    assert (await client.get(f"/v1/ledger/entries?source_event_id={uuid7()}", headers=auth)).json()[
        "items"
    ] == []

    accounts = (await client.get("/v1/ledger/accounts", headers=auth)).json()["items"]
    receivables = next(a for a in accounts if a["system_key"] == "receivables")
    st = await client.get(f"/v1/ledger/accounts/{receivables['id']}/statement", headers=auth)
    assert st.status_code == 200
    statement = st.json()
    assert statement["currency"] == "EUR"
    assert [
        (i["debit_minor"], i["credit_minor"], i["balance_minor"]) for i in statement["items"]
    ] == [
        (12_000, 0, 12_000),
        (0, 5_000, 7_000),
    ]
    balance = await client.get(f"/v1/ledger/customers/{customer}/balance", headers=auth)
    assert balance.status_code == 200
    assert balance.json()["balances"] == [
        {"currency": "EUR", "debit_minor": 12_000, "credit_minor": 5_000, "balance_minor": 7_000}
    ]
    unknown = await client.get(f"/v1/ledger/customers/{uuid.uuid4()}/balance", headers=auth)
    assert unknown.status_code == 404
    future = datetime(2000, 1, 1, tzinfo=UTC).isoformat()
    early = await client.get("/v1/ledger/trial-balance", params={"as_of": future}, headers=auth)
    assert early.json()["accounts"] == []
    naive = await client.get(
        "/v1/ledger/trial-balance", params={"as_of": "2025-01-01T00:00:00"}, headers=auth
    )
    assert naive.status_code == 422


async def test_statement_of_a_multi_currency_account_needs_a_currency(
    client: AsyncClient, books: Database, tenant: uuid.UUID, auth: dict[str, str]
) -> None:
    customer = uuid.uuid4()
    await post(books, tenant, "invoice.issued", invoice_payload(customer_id=customer, total=10))
    await post(
        books,
        tenant,
        "invoice.issued",
        invoice_payload(customer_id=customer, total=20, currency="USD"),
    )
    accounts = (await client.get("/v1/ledger/accounts", headers=auth)).json()["items"]
    revenue = next(a for a in accounts if a["system_key"] == "revenue")
    url = f"/v1/ledger/accounts/{revenue['id']}/statement"
    r = await client.get(url, headers=auth)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/ledger-currency-required")
    usd = await client.get(url, params={"currency": "USD"}, headers=auth)
    assert [i["balance_minor"] for i in usd.json()["items"]] == [20]


async def test_another_tenants_ledger_is_invisible(
    client: AsyncClient, books: Database, tenant: uuid.UUID, auth: dict[str, str]
) -> None:
    other = await make_tenant(books)
    result = await post(
        books, other, "invoice.issued", invoice_payload(customer_id=uuid.uuid4(), total=99)
    )
    theirs = await make_api_key(books, other, {"ledger:read"})
    their_accounts = (
        await client.get("/v1/ledger/accounts", headers={"Authorization": f"Bearer {theirs}"})
    ).json()["items"]
    assert (
        await client.get(f"/v1/ledger/entries/{result.entry_id}", headers=auth)
    ).status_code == 404
    r = await client.get(f"/v1/ledger/accounts/{their_accounts[0]['id']}", headers=auth)
    assert r.status_code == 404
    r = await client.post(f"/v1/ledger/entries/{result.entry_id}/reverse", headers=auth)
    assert r.status_code == 404
    assert (await client.get("/v1/ledger/trial-balance", headers=auth)).json()["accounts"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"as_of": "2025-01-01T00:00:00"},
        {"as_of": "9999-12-31T23:59:59-23:00"},
        {"as_of": "yesterday"},
        {"currency": "eur"},
    ],
    ids=["naive", "past-year-9999-in-utc", "not-a-time", "lower-case-currency"],
)
async def test_bad_report_queries_are_422(
    client: AsyncClient, auth: dict[str, str], query: dict[str, str]
) -> None:
    r = await client.get("/v1/ledger/trial-balance", params=query, headers=auth)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_manual_entry_text_and_time_are_checked(
    client: AsyncClient, auth: dict[str, str]
) -> None:
    lines = [
        {"account_code": "1000", "debit_minor": 1},
        {"account_code": "4000", "credit_minor": 1},
    ]
    for body, field in [
        ({"description": "tab\tok but nul \u0000 not"}, "description"),
        ({"description": "ok", "occurred_at": "2025-03-01T10:00:00"}, "occurred_at"),
        ({"description": " "}, "description"),
    ]:
        r = await client.post(
            "/v1/ledger/entries", json={"currency": "EUR", "lines": lines, **body}, headers=auth
        )
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}
    ok = await client.post(
        "/v1/ledger/entries",
        json={
            "currency": "EUR",
            "lines": lines,
            "description": "  Opening\tbalance  ",
            "occurred_at": "2025-03-01T10:00:00+02:00",
        },
        headers=auth,
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["description"] == "Opening\tbalance"
    assert ok.json()["occurred_at"].startswith("2025-03-01T08:00:00")


async def test_a_forged_statement_cursor_is_400(client: AsyncClient, auth: dict[str, str]) -> None:
    from tradeflow.kit.pagination import encode_cursor

    accounts = (await client.get("/v1/ledger/accounts", headers=auth)).json()["items"]
    url = f"/v1/ledger/accounts/{accounts[0]['id']}/statement"
    for cursor in (encode_cursor([1, "x"]), encode_cursor([uuid.uuid4(), uuid.uuid4()]), "@@"):
        r = await client.get(url, params={"cursor": cursor}, headers=auth)
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith("/invalid-cursor")
