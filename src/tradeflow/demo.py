"""`tradeflow up --demo`: a demo seller with an owner (password + TOTP) and an all-scopes API key.

The credentials go to `$TRADEFLOW_HOME/demo-credentials.json` (mode 0600):
`tenant_id`, `email`, `password`, `totp_secret`, `api_key`, `base_url`.

Re-running is harmless: every credential in an existing file that still
works is kept, and only what is missing or no longer valid is made anew
(a password that no longer matches is reset, a revoked key replaced, …).

Other contexts add their demo data by shipping `tradeflow/<context>/demo.py`
with `async def seed(db, settings, keyring, creds) -> dict`; it runs after
the identity part, gets the credentials so far, and returns keys to add to
the file (e.g. `customer_id`). Keys it does not return are left alone.

Once the process serves (API, worker and sandbox processor running), `post_start` books the
demo orders DEMO-1…3 through the API: placed, confirmed (invoiced) and paid through the
sandbox, so the ledger and the Beancount file are not empty. It resumes where a previous
start stopped and adds nothing once they are paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import json
import os
import pkgutil
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import structlog

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

log = structlog.get_logger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Seller"
DEMO_EMAIL = "owner@demo-seller.example.com"
CREDENTIALS_FILE = "demo-credentials.json"


def credentials_path(settings: Settings) -> Path:
    return settings.home.resolve() / CREDENTIALS_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def new_password() -> str:
    return "demo-" + secrets.token_urlsafe(15)


async def _seed_identity(db: Database, keyring: Keyring, old: dict[str, Any]) -> dict[str, Any]:
    from tradeflow.identity import mfa, passwords, service
    from tradeflow.identity.principal import ALL_SCOPES
    from tradeflow.identity.repository import CredentialRepository, IdentityRepository
    from tradeflow.identity.tokens import api_key_prefix, is_api_key, sha256

    creds: dict[str, Any] = {}
    async with db.system_session() as s:
        lookup = CredentialRepository(s)
        tenant = await lookup.tenant_by_ref(DEMO_SLUG)
        if tenant is None:
            tenant = await service.create_tenant(s, name=DEMO_NAME, slug=DEMO_SLUG)
        repo = IdentityRepository(s, tenant.id)
        creds["tenant_id"] = str(tenant.id)

        user = await repo.user_by_email(str(old.get("email") or DEMO_EMAIL))
        if user is None:
            user = await repo.user_by_email(DEMO_EMAIL)
        kept = old.get("password")
        password = kept if isinstance(kept, str) else new_password()
        if user is None:
            password = new_password()
            user = await service.create_user(
                s, tenant.id, email=DEMO_EMAIL, password=password, role="owner"
            )
        elif not passwords.verify_password(user.password_hash, password):
            password = new_password()
            user.password_hash = await passwords.hash_password_async(password)
        user.active, user.role, user.locked_until, user.failed_logins = True, "owner", None, 0
        creds["email"], creds["password"] = user.email, password

        secret = old.get("totp_secret")
        current = mfa.decrypt_seed(keyring, user, user.totp_secret) if user.totp_secret else None
        if (
            current is None
            or not isinstance(secret, str)
            or not hmac.compare_digest(current, secret)
        ):
            from tradeflow.identity import totp

            secret = totp.new_secret()
            user.totp_secret = mfa.encrypt_seed(keyring, user, secret)
            user.totp_pending_secret, user.totp_last_step = None, None
            from tradeflow.kit.time import utcnow

            user.mfa_enabled_at = utcnow()
        creds["totp_secret"] = secret

        api_key = old.get("api_key")
        usable = False
        if isinstance(api_key, str) and is_api_key(api_key):
            prefix = api_key_prefix(api_key)
            key = await lookup.api_key_by_prefix(prefix) if prefix else None
            usable = bool(
                key is not None
                and key.tenant_id == tenant.id
                and hmac.compare_digest(key.key_hash, sha256(api_key))
                and key.revoked_at is None
                and key.expires_at is None
                and set(key.scopes) >= ALL_SCOPES
            )
        if not usable:
            created = await service.create_api_key(
                repo, name="demo (all scopes)", scopes=ALL_SCOPES, actor=None, created_by=user.id
            )
            api_key = created.token
        creds["api_key"] = api_key
        await s.commit()
    return creds


def _context_seeders() -> list[Any]:
    import tradeflow

    seeders = []
    for mod in pkgutil.iter_modules(tradeflow.__path__):
        if not mod.ispkg:
            continue
        with contextlib.suppress(ModuleNotFoundError):
            module = importlib.import_module(f"tradeflow.{mod.name}.demo")
            if callable(getattr(module, "seed", None)):
                seeders.append(module.seed)
    return seeders


async def seed_demo_async(settings: Settings, url: str, keyring: Keyring) -> dict[str, Any]:
    path = credentials_path(settings)
    old = _read(path)
    db = Database.from_settings(settings, url)
    try:
        creds = {**old, **await _seed_identity(db, keyring, old)}
        creds["base_url"] = settings.base_url
        for seed in _context_seeders():
            creds.update(await seed(db, settings, keyring, dict(creds)) or {})
    finally:
        await db.dispose()
    _write(path, creds)
    log.info("demo_seeded", path=str(path), tenant_id=creds["tenant_id"])
    return creds


def seed_demo(settings: Settings, url: str, keyring: Keyring) -> dict[str, Any]:
    """Seed (or repair) the demo tenant and write its credentials; returns them."""
    return asyncio.run(seed_demo_async(settings, url, keyring))


# -- after start: a few orders invoiced and paid --------------------------------------------------
# The orders go through the public API of the running process, so they are placed, confirmed
# and paid exactly as a user would: the payment is a real call to the sandbox processor and
# the order turns `paid` only when the worker has handled the sandbox's webhook. Their
# references stay clear of the README walkthrough's (PO-1001, PO-1002).
DEMO_ORDERS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("DEMO-1", (("BOLT-M8-40", 10), ("NUT-M8", 20))),
    ("DEMO-2", (("DRILL-18V", 1),)),
    ("DEMO-3", (("BOLT-M8-50", 4), ("NUT-M8", 8))),
)
DEMO_REFERENCE_PREFIX = "DEMO-"
# Where the demo leaves an order alone: paid, or taken elsewhere by a user since.
SETTLED = frozenset({"paid", "fulfilled", "refunded", "cancelled", "rejected"})
CONFIRMABLE = frozenset({"placed", "approved"})
PAYABLE = frozenset({"invoiced", "partially_paid"})
# A payment in any other state holds the invoice's amount (or is being resolved): no new one.
SPENT_PAYMENT = frozenset({"failed", "canceled"})


class DemoBooksError(RuntimeError):
    """The demo orders could not be taken to `paid` (the message says where it stopped)."""


def _ok(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise DemoBooksError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def _demo_orders_by_reference(
    client: httpx.AsyncClient, customer_id: str
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(100):  # bounded: 10,000 orders of the demo customer at most
        params = {"customer_id": customer_id, "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        page = _ok(await client.get("/v1/orders", params=params), 200)
        for order in page["items"]:
            reference = order.get("reference") or ""
            if reference.startswith(DEMO_REFERENCE_PREFIX):
                found.setdefault(reference, order)  # newest first: keep the newest
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return found


async def _order(client: httpx.AsyncClient, order_id: str) -> tuple[dict[str, Any], str]:
    response = await client.get(f"/v1/orders/{order_id}")
    return _ok(response, 200), response.headers["ETag"]


async def _pay(
    client: httpx.AsyncClient, order: dict[str, Any], payment_method: str, deadline: float
) -> None:
    """Pay the order's invoice unless a payment already holds it. The sandbox runs beside the
    API and may not listen yet: 503 (nothing recorded) is retried until `deadline`."""
    payments = _ok(await client.get("/v1/payments", params={"order_id": order["id"]}), 200)
    if any(p["status"] not in SPENT_PAYMENT for p in payments["items"]):
        return
    key = f"demo-pay-{order['id']}-{len(payments['items'])}"
    delay = 0.2
    while True:
        response = await client.post(
            "/v1/payments",
            json={"invoice_id": order["invoice_id"], "payment_method": payment_method},
            headers={"Idempotency-Key": key},
        )
        if response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    payment = _ok(response, 201, 202)
    if payment["status"] == "failed":
        raise DemoBooksError(
            f"the sandbox declined the payment of {order['reference']} "
            f"({payment.get('failure_code')})"
        )


async def seed_demo_books(
    client: httpx.AsyncClient, creds: dict[str, Any], *, wait_seconds: float = 60.0
) -> dict[str, str]:
    """Place, confirm and pay the demo orders that are not yet paid; wait until all are paid.

    Resumes wherever an earlier run stopped (an order is found by its reference, its
    payment by its order), so re-running adds nothing. Returns reference → status.
    """
    customer_id, skus = creds.get("customer_id"), set(creds.get("skus") or ())
    if not customer_id:
        raise DemoBooksError("no demo customer in the credentials")
    deadline = asyncio.get_running_loop().time() + wait_seconds
    existing = await _demo_orders_by_reference(client, str(customer_id))
    ids: dict[str, str] = {}
    for reference, lines in DEMO_ORDERS:
        if reference not in existing and not {sku for sku, _ in lines} <= skus:
            continue  # a catalog without these SKUs: nothing to order
        order_id = existing[reference]["id"] if reference in existing else None
        if order_id is None:
            placed = await client.post(
                "/v1/orders",
                json={
                    "customer_id": customer_id,
                    "currency": creds.get("currency") or "EUR",
                    "reference": reference,
                    "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines],
                },
                headers={"Idempotency-Key": f"demo-order-{reference}"},
            )
            order_id = _ok(placed, 201)["id"]
        order, etag = await _order(client, order_id)
        if order["status"] in CONFIRMABLE:
            confirmed = await client.post(
                f"/v1/orders/{order_id}/confirm", headers={"If-Match": etag}
            )
            order = _ok(confirmed, 200)
        if order["status"] in PAYABLE:
            await _pay(client, order, str(creds.get("payment_method") or "pm_sandbox_ok"), deadline)
        ids[reference] = order_id
    # Paid once the worker has handled the sandbox's webhook.
    statuses: dict[str, str] = {}
    while True:
        for reference, order_id in ids.items():
            statuses[reference] = (await _order(client, order_id))[0]["status"]
        if all(s in SETTLED for s in statuses.values()):
            return statuses
        if asyncio.get_running_loop().time() > deadline:
            raise DemoBooksError(f"not all demo orders paid after {wait_seconds:.0f}s: {statuses}")
        await asyncio.sleep(0.5)


async def post_start(settings: Settings) -> None:
    """`tradeflow up --demo`, once the API, worker and sandbox run: the demo orders, paid.

    Reads the credentials `seed_demo` wrote. A failure is told on the console and raised
    for the caller to log; the platform keeps running without the orders.
    """
    from rich.console import Console
    from rich.markup import escape

    from tradeflow.runtime import local_api_url

    console = Console(stderr=True)
    creds = _read(credentials_path(settings))
    try:
        if not creds.get("api_key"):
            raise DemoBooksError(f"no demo API key in {credentials_path(settings)}")
        async with httpx.AsyncClient(
            base_url=local_api_url(settings),
            headers={"Authorization": f"Bearer {creds['api_key']}"},
            timeout=30,
        ) as client:
            statuses = await seed_demo_books(client, creds)
    except Exception as exc:
        console.print(f"[bold red]demo orders not booked[/]: {escape(str(exc))}", soft_wrap=True)
        raise
    log.info("demo_books_ready", orders=statuses, beancount_file=creds.get("beancount_file"))
    booked = ", ".join(f"{ref} {status}" for ref, status in statuses.items())
    console.print(
        f"[green]demo orders[/] {booked}; journal in {creds.get('beancount_file')}",
        soft_wrap=True,
    )


def post_start_tasks(
    settings: Settings, demo: bool
) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    """The tasks `tradeflow up` adds to run after its start (nothing without `--demo`)."""
    if not demo:
        return []
    from tradeflow.runtime import after_ready

    return [after_ready(settings, "demo_books", lambda: post_start(settings))]
