"""Order states over the API: approval, ETag/If-Match, confirmation with credit check and
invoice, cancel, fulfil, illegal moves — each with its event."""

from __future__ import annotations

from datetime import timedelta

from httpx import AsyncClient

from orders.factories import (
    World,
    act,
    buyer_headers,
    count,
    event_types,
    make_buyer,
    make_world,
    order_body,
    place,
)
from tradeflow.db import Database
from tradeflow.identity import service as identity
from tradeflow.identity.repository import IdentityRepository
from tradeflow.kit.time import utcnow


async def test_over_the_spending_limit_waits_for_an_approver(
    client: AsyncClient, world: World
) -> None:
    buyer_id = await make_buyer(world, spending_limit_minor=1000)
    approver_id = await make_buyer(world, role="approver")
    buyer = await buyer_headers(client, world, buyer_id)
    approver = await buyer_headers(client, world, approver_id)

    small = await place(client, world, order_body(world, ("NUT-2", 1)), headers=buyer)
    assert small.json()["status"] == "placed"  # 250 + 50 tax ≤ 1000

    big = await place(client, world, headers=buyer)
    assert big.status_code == 201
    assert big.json()["status"] == "pending_approval"
    # `actions` are what the caller may do: the placing buyer may only cancel it; an approver
    # of the company may approve or reject it; the seller's staff may cancel it.
    assert big.json()["actions"] == ["cancel"]
    url = f"/v1/orders/{big.json()['id']}"
    seen = {
        name: (await client.get(url, headers=who)).json()["actions"]
        for name, who in (("buyer", buyer), ("approver", approver), ("staff", world.staff))
    }
    assert seen == {
        "buyer": ["cancel"],
        "approver": ["approve", "reject", "cancel"],
        "staff": ["cancel"],
    }
    assert await event_types(world.db, big.json()["id"]) == [
        "order.created",
        "order.approval_requested",
    ]
    # The buyer who placed it is no approver; nor is the seller's staff.
    for who in (buyer, world.staff):
        r = await act(client, big, "approve", headers=who)
        assert r.status_code == 403
        assert r.json()["type"].endswith("/approver-required")
    # Confirming before approval is illegal, and the problem names the state.
    r = await act(client, big, "confirm", headers=world.staff)
    assert r.status_code == 409
    assert r.json()["current_status"] == "pending_approval"
    assert "pending_approval" in r.json()["detail"]

    approved = await act(client, big, "approve", headers=approver)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == f"user:{approver_id}"
    assert approved.headers["etag"] == '"2"'
    confirmed = await act(client, approved, "confirm", headers=world.staff)
    assert confirmed.json()["status"] == "invoiced"


async def test_rejection_is_final(client: AsyncClient, world: World) -> None:
    buyer = await buyer_headers(client, world, await make_buyer(world, spending_limit_minor=0))
    approver = await buyer_headers(client, world, await make_buyer(world, role="buyer-admin"))
    order = await place(client, world, headers=buyer)
    r = await act(client, order, "reject", headers=approver, body={"reason": "Too many bolts"})
    assert r.json()["status"] == "rejected"
    assert r.json()["decision_reason"] == "Too many bolts"
    assert r.json()["actions"] == []
    for action in ("approve", "confirm", "cancel", "fulfil"):
        again = await act(client, r, action, headers=world.staff)
        assert again.status_code == 409, action
        assert again.json()["type"].endswith("/illegal-transition")
        assert again.json()["current_status"] == "rejected"
    types = await event_types(world.db, order.json()["id"])
    assert types[-1] == "order.rejected"


async def test_if_match_missing_stale_and_current(client: AsyncClient, world: World) -> None:
    order = (await place(client, world)).json()
    url = f"/v1/orders/{order['id']}"
    missing = await client.patch(url, json={"notes": "x"}, headers=world.staff)
    assert missing.status_code == 428
    assert missing.json()["type"].endswith("/if-match-required")

    ok = await client.patch(
        url,
        json={"notes": "gate 2", "reference": "PO-1"},
        headers={**world.staff, "If-Match": '"1"'},
    )
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    assert (ok.json()["notes"], ok.json()["reference"]) == ("gate 2", "PO-1")

    stale = await client.patch(url, json={"notes": "y"}, headers={**world.staff, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["type"].endswith("/stale-version")
    assert stale.headers["etag"] == '"2"'
    garbage = await client.patch(url, json={"notes": "y"}, headers={**world.staff, "If-Match": "v"})
    assert garbage.status_code == 412
    star = await client.patch(url, json={"notes": "z"}, headers={**world.staff, "If-Match": "*"})
    assert star.status_code == 200
    assert star.json()["version"] == 3

    no_match = await client.post(f"{url}/cancel", headers=world.staff)
    assert no_match.status_code == 428
    got = await client.get(url, headers=world.staff)
    assert got.json()["notes"] == "z"
    assert got.json()["status"] == "placed"
    assert await event_types(world.db, order["id"]) == [
        "order.created",
        "order.updated",
        "order.updated",
    ]


async def test_confirm_issues_an_invoice_with_number_and_due_date(
    client: AsyncClient, world: World
) -> None:
    order = await place(client, world, order_body(world, ("GEAR-3", 1)))
    r = await act(client, order, "confirm", headers=world.staff)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "invoiced"
    assert body["confirmed_at"] is not None
    assert body["invoice_id"] is not None
    assert body["actions"] == ["cancel"]

    inv = await client.get(f"/v1/invoices/{body['invoice_id']}", headers=world.staff)
    assert inv.status_code == 200
    invoice = inv.json()
    year = utcnow().year
    assert invoice["number"] == f"INV-{year}-000001"
    assert invoice["total_minor"] == 4999 + 1000
    assert invoice["amount_due_minor"] == 5999
    assert invoice["status"] == "open"
    assert invoice["due_date"] == (utcnow().date() + timedelta(days=30)).isoformat()
    assert invoice["customer_name"] == "Größhandel Ελλάς"
    assert await event_types(world.db, order.json()["id"]) == [
        "order.created",
        "order.confirmed",
        "order.invoiced",
    ]
    assert await event_types(world.db, body["invoice_id"]) == ["invoice.issued"]

    html = await client.get(invoice["html_url"], headers=world.staff)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert f"INV-{year}-000001" in html.text
    assert "Größhandel Ελλάς" in html.text
    pdf = await client.get(invoice["pdf_url"], headers=world.staff)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")

    second = await place(client, world)
    r2 = await act(client, second, "confirm", headers=world.staff)
    n2 = (await client.get(f"/v1/invoices/{r2.json()['invoice_id']}", headers=world.staff)).json()
    assert n2["number"] == f"INV-{year}-000002"
    listed = (await client.get("/v1/invoices", headers=world.staff)).json()["items"]
    assert [i["number"] for i in listed] == [n2["number"], invoice["number"]]


async def test_credit_limit_refuses_confirmation_and_keeps_the_number(
    client: AsyncClient, rolled_back: Database
) -> None:
    world = await make_world(rolled_back, credit_limit_minor=10_000)
    first = await place(client, world, order_body(world, ("GEAR-3", 1)))  # 5999
    assert (await act(client, first, "confirm", headers=world.staff)).status_code == 200
    second = await place(client, world, order_body(world, ("GEAR-3", 1)))  # 5999 more
    r = await act(client, second, "confirm", headers=world.staff)
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"].endswith("/credit-limit-exceeded")
    assert problem["open_receivables_minor"] == 5999
    assert problem["order_total_minor"] == 5999
    assert problem["credit_limit_minor"] == 10_000
    again = await client.get(f"/v1/orders/{second.json()['id']}", headers=world.staff)
    assert again.json()["status"] == "placed"
    assert again.json()["version"] == 1
    assert await count(rolled_back, "SELECT count(*) FROM invoices") == 1
    # A small order still fits, and takes the next number: the refusal used none.
    small = await place(client, world, order_body(world, ("NUT-2", 1)))
    ok = await act(client, small, "confirm", headers=world.staff)
    assert ok.status_code == 200
    inv = (await client.get(f"/v1/invoices/{ok.json()['invoice_id']}", headers=world.staff)).json()
    assert inv["number"].endswith("-000002")


async def test_cancel_rules_and_void_invoice(client: AsyncClient, world: World) -> None:
    buyer = await buyer_headers(client, world, await make_buyer(world))
    mine = await place(client, world, headers=buyer)
    cancelled = await act(client, mine, "cancel", headers=buyer, body={"reason": "dup"})
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "dup"

    other = await place(client, world, headers=buyer)
    invoiced = await act(client, other, "confirm", headers=world.staff)
    assert invoiced.json()["status"] == "invoiced"
    # Buyers may not confirm, fulfil, or cancel once the seller confirmed.
    for action in ("cancel",):
        r = await act(client, invoiced, action, headers=buyer)
        assert r.status_code == 403
    staff_cancel = await act(client, invoiced, "cancel", headers=world.staff)
    assert staff_cancel.json()["status"] == "cancelled"
    inv = await client.get(f"/v1/invoices/{invoiced.json()['invoice_id']}", headers=buyer)
    assert inv.json()["status"] == "void"
    assert inv.json()["amount_due_minor"] == 0
    types = await event_types(world.db, other.json()["id"])
    assert types[-1] == "order.cancelled"
    invoice_events = await event_types(world.db, invoiced.json()["invoice_id"])
    assert invoice_events == ["invoice.issued", "invoice.voided"]


async def test_staff_only_actions_and_fulfil_needs_payment(
    client: AsyncClient, world: World
) -> None:
    buyer = await buyer_headers(client, world, await make_buyer(world))
    order = await place(client, world, headers=buyer)
    r = await act(client, order, "confirm", headers=buyer)
    assert r.status_code == 403
    confirmed = await act(client, order, "confirm", headers=world.staff)
    r = await act(client, confirmed, "fulfil", headers=world.staff)
    assert r.status_code == 409
    assert r.json()["current_status"] == "invoiced"
    assert r.json()["allowed_actions"] == ["cancel"]


async def test_buyers_see_only_their_invoices(client: AsyncClient, world: World) -> None:
    from orders.factories import make_customer

    buyer = await buyer_headers(client, world, await make_buyer(world))
    other_customer = await make_customer(world)
    theirs = await place(client, world, {**order_body(world), "customer_id": str(other_customer)})
    confirmed = await act(client, theirs, "confirm", headers=world.staff)
    invoice_id = confirmed.json()["invoice_id"]
    for suffix in ("", ".html", ".pdf"):
        r = await client.get(f"/v1/invoices/{invoice_id}{suffix}", headers=buyer)
        assert r.status_code == 404, suffix
    assert (await client.get("/v1/invoices", headers=buyer)).json()["items"] == []
    assert len((await client.get("/v1/invoices", headers=world.staff)).json()["items"]) == 1


async def test_zero_total_order_is_paid_on_confirmation(client: AsyncClient, world: World) -> None:
    from orders.factories import add_price_list

    async with world.db.tenant_session(world.tenant_id) as s:
        await add_price_list(s, world.tenant_id, "EUR", {"NUT-2": 0})
        await s.commit()
    order = await place(client, world, order_body(world, ("NUT-2", 5)))
    assert order.json()["total_minor"] == 0
    r = await act(client, order, "confirm", headers=world.staff)
    assert r.json()["status"] == "paid"
    assert r.json()["actions"] == ["fulfil"]
    fulfilled = await act(client, r, "fulfil", headers=world.staff)
    assert fulfilled.json()["status"] == "fulfilled"
    assert (await event_types(world.db, order.json()["id"]))[-2:] == [
        "order.paid",
        "order.fulfilled",
    ]


async def test_actions_are_what_the_caller_may_do(client: AsyncClient, world: World) -> None:
    buyer = await buyer_headers(client, world, await make_buyer(world))
    async with world.db.system_session() as s:
        read_only = await identity.create_api_key(
            IdentityRepository(s, world.tenant_id),
            name="reader",
            scopes=frozenset({"orders:read"}),
            actor=None,
        )
        await s.commit()
    reader = {"Authorization": f"Bearer {read_only.token}"}
    placed = await place(client, world, headers=buyer)
    assert placed.json()["actions"] == ["cancel"]  # a buyer never confirms
    url = f"/v1/orders/{placed.json()['id']}"

    async def actions(headers: dict[str, str]) -> list[str]:
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        return list(r.json()["actions"])

    assert await actions(world.staff) == ["confirm", "cancel"]
    assert await actions(reader) == []  # orders:read only: nothing to do
    confirmed = await act(client, placed, "confirm", headers=world.staff)
    assert confirmed.json()["actions"] == ["cancel"]  # staff may still cancel an invoice
    assert await actions(buyer) == []  # the buyer no longer may
    # The actions shown are the ones the API accepts from that caller.
    r = await act(client, confirmed, "cancel", headers=buyer)
    assert r.status_code == 403
