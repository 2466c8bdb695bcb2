"""End to end: `tradeflow up --demo` books a few orders invoiced and paid, once.

After the start, the demo's post-start step places DEMO-1…3 for the demo customer, confirms
them (invoices) and pays them through the sandbox processor, whose webhook turns each order
`paid`. Then the trial balance has non-zero totals that balance, and the Beancount file named
in `demo-credentials.json` loads with beancount's own loader without errors and holds every
journal entry. A restart on the same home adds no order, payment or entry.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from beancount import loader
from beancount.core import data
from e2e_support import Instance, await_ready, free_port, kill_leftovers, start, stop

pytestmark = pytest.mark.slow

READY_TIMEOUT = 60.0
BOOKS_TIMEOUT = 90.0
DEMO_REFERENCES = ["DEMO-1", "DEMO-2", "DEMO-3"]
ENTRY_ID = re.compile(r'^\s+tradeflow_entry_id:\s*"([^"]+)"', re.MULTILINE)


@pytest.fixture
def home() -> Iterator[Path]:
    # A short path: the embedded server's Unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="tf-books-"))
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def api(instance: Instance) -> httpx.Client:
    creds = instance.credentials()
    return httpx.Client(
        base_url=instance.base_url,
        headers={"Authorization": f"Bearer {creds['api_key']}"},
        timeout=30,
    )


def all_items(client: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        query = {**params, "limit": "100", **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=query)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items
    pytest.fail(f"{path}: more pages than expected")


def demo_orders(client: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    orders = all_items(client, "/v1/orders", customer_id=customer_id)
    return [o for o in orders if (o["reference"] or "").startswith("DEMO-")]


def books_state(instance: Instance) -> tuple[list[str], str]:
    """What is still missing from the demo's books (empty: all there), and a summary."""
    creds = instance.credentials()
    missing: list[str] = []
    with api(instance) as client:
        orders = demo_orders(client, creds["customer_id"])
        statuses = sorted((o["reference"], o["status"]) for o in orders)
        if statuses != [(ref, "paid") for ref in DEMO_REFERENCES]:
            missing.append(f"demo orders {statuses}")
        tb = client.get("/v1/ledger/trial-balance")
        assert tb.status_code == 200, tb.text
        totals = tb.json()["totals"]
        if not totals or not all(t["debit_minor"] > 0 for t in totals):
            missing.append(f"trial balance totals {totals}")
        entry_ids = {e["id"] for e in all_items(client, "/v1/ledger/entries")}
    # Every invoice and payment: one entry each, at least.
    if len(entry_ids) < 2 * len(DEMO_REFERENCES):
        missing.append(f"{len(entry_ids)} ledger entries")
    path = Path(creds["beancount_file"])
    written = set(ENTRY_ID.findall(path.read_text())) if path.exists() else set()
    if written != entry_ids:
        missing.append(f"{len(written)} of {len(entry_ids)} entries in {path}")
    return missing, f"{statuses}, {len(entry_ids)} entries, totals {totals}"


def await_books(instance: Instance, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    missing: list[str] = ["not checked"]
    while time.monotonic() < deadline:
        assert instance.proc.poll() is None, f"exited:\n{instance.output()}"
        missing, _ = books_state(instance)
        if not missing:
            return
        time.sleep(0.5)
    pytest.fail(f"demo books not complete within {timeout}s: {missing}\n{instance.output()}")


def await_log(instance: Instance, text: str) -> None:
    """Until the process has written `text` (the demo step told its outcome)."""
    deadline = time.monotonic() + BOOKS_TIMEOUT
    while text not in (log := instance.log.read_text(errors="replace")):
        assert "demo_books_failed" not in log, instance.output()
        assert time.monotonic() < deadline, f"no {text!r} in the output:\n{instance.output()}"
        time.sleep(0.3)


def test_demo_books_orders_invoiced_and_paid_once(home: Path) -> None:
    first = start(home, free_port())
    try:
        await_ready(first, time.monotonic() + READY_TIMEOUT)
        await_books(first, BOOKS_TIMEOUT)
        creds = first.credentials()
        assert Path(creds["beancount_file"]).is_relative_to(home.resolve())

        with api(first) as client:
            tb = client.get("/v1/ledger/trial-balance").json()
            payments = all_items(client, "/v1/payments", customer_id=creds["customer_id"])
            entries = all_items(client, "/v1/ledger/entries")
        assert tb["balanced"] is True
        assert all(t["debit_minor"] == t["credit_minor"] > 0 for t in tb["totals"]), tb
        # Paid through the sandbox: a captured payment per order, its processor's id on it.
        assert len(payments) == len(DEMO_REFERENCES), payments
        assert all(p["status"] == "captured" and p["processor"] == "sandbox" for p in payments)
        assert all(p["processor_payment_id"] for p in payments), payments
        sources = {e["source_event_type"] for e in entries}
        assert {"invoice.issued", "payment.captured"} <= sources, sources

        loaded, errors, _ = loader.load_file(creds["beancount_file"])
        assert errors == [], errors
        transactions = [e for e in loaded if isinstance(e, data.Transaction)]
        assert len(transactions) == len(entries), (len(transactions), len(entries))
        told = "demo orders DEMO-1 paid, DEMO-2 paid, DEMO-3 paid; journal in "
        await_log(first, told + creds["beancount_file"])
        assert stop(first) == 0, first.output()
    finally:
        kill_leftovers(first)

    # The same home again: the step runs, finds its orders paid, and adds nothing.
    again = start(home, free_port())
    try:
        await_ready(again, time.monotonic() + READY_TIMEOUT)
        await_log(again, "demo_books_ready")
        missing, summary = books_state(again)
        assert missing == [], summary
        with api(again) as client:
            assert len(demo_orders(client, creds["customer_id"])) == len(DEMO_REFERENCES)
            assert len(all_items(client, "/v1/payments")) == len(payments)
            assert len(all_items(client, "/v1/ledger/entries")) == len(entries)
        assert stop(again) == 0, again.output()
    finally:
        kill_leftovers(again)
