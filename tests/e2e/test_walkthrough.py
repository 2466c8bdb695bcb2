"""End to end: the README's order-to-cash walkthrough (`docs/walkthrough.sh`) against a live
`tradeflow up --demo` on the embedded PostgreSQL.

The script itself checks each answer (prices, an order placed and one approved, invoices,
sandbox payments, both orders paid, the events and their webhook deliveries) and exits
non-zero at the first failure. Here it must exit 0; the API must agree that both orders are
paid; and with the sandbox declining every charge the same script must fail at the payment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    READY_TIMEOUT,
    STOP_TIMEOUT,
    Instance,
    await_ready,
    clean_env,
    free_port,
    kill_leftovers,
    start,
)

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "walkthrough.sh"
SCRIPT_TIMEOUT = 150.0
DEMO_BOOKS_TIMEOUT = 90.0
DEMO_ORDERS_PAID = [("DEMO-1", "paid"), ("DEMO-2", "paid"), ("DEMO-3", "paid")]


@pytest.fixture
def demo() -> Iterator[Instance]:
    # A short path: the embedded server's Unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="tf-walk-"))
    # The walkthrough's webhook receiver listens on 127.0.0.1.
    instance = start(root / "home", free_port(), env={"TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE": "true"})
    try:
        await_ready(instance, time.monotonic() + READY_TIMEOUT)
        yield instance
    finally:
        kill_leftovers(instance)
        shutil.rmtree(root, ignore_errors=True)


def run_walkthrough(demo: Instance) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    # The script's `python3` is this interpreter, as on a machine with only Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(SCRIPT), str(demo.credentials_file), demo.base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )


def await_demo_orders_paid(demo: Instance, staff: dict[str, str]) -> None:
    """The demo's own orders (DEMO-1…3, booked after the start) are paid before the script
    runs, so its webhook endpoint sees only the script's orders."""
    deadline = time.monotonic() + DEMO_BOOKS_TIMEOUT
    statuses: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        orders = httpx.get(f"{demo.base_url}/v1/orders", headers=staff, timeout=30)
        assert orders.status_code == 200, orders.text
        statuses = sorted((o["reference"], o["status"]) for o in orders.json()["items"])
        if statuses == DEMO_ORDERS_PAID:
            return
        time.sleep(0.5)
    pytest.fail(f"demo orders not paid within {DEMO_BOOKS_TIMEOUT}s: {statuses}")


def test_walkthrough_takes_two_orders_to_cash_then_stops_cleanly(demo: Instance) -> None:
    creds = demo.credentials()
    staff = {"Authorization": f"Bearer {creds['api_key']}"}
    await_demo_orders_paid(demo, staff)
    run = run_walkthrough(demo)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{demo.output()}"
    assert (
        "order.created order.approval_requested order.approved order.confirmed "
        "order.invoiced order.paid"
    ) in run.stdout
    assert run.stdout.count("order.paid delivered HTTP 204") == 2, run.stdout

    # The API agrees: the customer's two orders are paid, one after an approval (beside the
    # demo's own, untouched).
    orders = httpx.get(
        f"{demo.base_url}/v1/orders",
        params={"customer_id": creds["customer_id"]},
        headers=staff,
        timeout=30,
    )
    assert orders.status_code == 200, orders.text
    items = orders.json()["items"]
    assert sorted((o["reference"], o["status"]) for o in items) == [
        *DEMO_ORDERS_PAID,
        ("PO-1001", "paid"),
        ("PO-1002", "paid"),
    ], items
    over_limit = next(o for o in items if o["reference"] == "PO-1002")
    approved = httpx.get(
        f"{demo.base_url}/v1/events",
        params={"type": "order.approved", "aggregate_id": over_limit["id"]},
        headers=staff,
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    assert len(approved.json()["items"]) == 1, approved.text

    # The script's exit code means something: with every charge declined it fails.
    faults = httpx.put(
        f"{creds['sandbox_control_url']}/accounts/{creds['sandbox_account_id']}/faults",
        json={"decline_code": "card_declined"},
        timeout=10,
    )
    assert faults.status_code == 200, faults.text
    declined = run_walkthrough(demo)
    assert declined.returncode != 0, declined.stdout
    assert "FAILED: payment status is 'failed'" in declined.stderr, declined.stderr

    demo.proc.send_signal(signal.SIGTERM)
    try:
        code = demo.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not stop within {STOP_TIMEOUT}s of SIGTERM:\n{demo.output()}")
    assert code == 0, demo.output()
