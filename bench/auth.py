"""Authentication benchmark, run on demand — not part of CI.

    .venv/bin/python bench/auth.py [--seconds 8] [--concurrency 1,16] [--logins 20]

What every authenticated request pays: `GET /v1/me` through the whole app
in-process (middleware, `current_principal`, the per-caller rate limit, the
`TenantSession` unit of work, one read) with an API key and with a JWT access
token, from C concurrent tasks for S seconds. Also the latency of
`POST /v1/auth/login` (password + TOTP) with the production argon2id
parameters (t=3, m=64 MiB, p=4), which dominate it by design.

Prints requests/s, p50, p99 and the benchmark process's CPU per request.
Runs against the embedded PostgreSQL (a pgserver in a temp folder) unless
`TRADEFLOW_DATABASE_URL` names a server; either way in a fresh database that
is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import pyotp
from httpx import ASGITransport, AsyncClient

from tradeflow.app import create_app
from tradeflow.config import load_settings
from tradeflow.db import Database
from tradeflow.identity import mfa, service
from tradeflow.identity.principal import ALL_SCOPES
from tradeflow.identity.repository import IdentityRepository
from tradeflow.kit.keyring import Keyring

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders import private_database

PASSWORD = "bench password that is long enough"


async def seed(db: Database, keyring: Keyring, users: int) -> tuple[list[tuple[str, str]], str]:
    """A tenant with `users` owners, each with TOTP on, and an all-scopes API key."""
    accounts = []
    async with db.system_session() as s:
        tenant = await service.create_tenant(s, name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
        repo = IdentityRepository(s, tenant.id)
        for i in range(users):
            email = f"bench{i}@example.com"
            user = await service.create_user(
                s, tenant.id, email=email, password=PASSWORD, role="owner"
            )
            secret = (await mfa.enrol(repo, keyring, user)).secret
            user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
            accounts.append((email, secret))
        key = await service.create_api_key(repo, name="bench", scopes=ALL_SCOPES, actor=None)
        await s.commit()
    return accounts, key.token


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def hammer(client: AsyncClient, token: str, seconds: float, tasks: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            r = await client.get("/v1/me", headers=headers)
            latencies.append(time.perf_counter() - started)
            errors += r.status_code != 200

    cpu0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed, used = time.perf_counter() - t0, cpu() - cpu0
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_us": used / len(latencies) * 1e6,
        "errors": errors,
    }


async def main(args: argparse.Namespace) -> None:
    with private_database() as (_home, _server, db_url):
        import base64

        settings = load_settings(
            database_url=db_url,
            master_key="b1:" + base64.b64encode(os.urandom(32)).decode(),
            ratelimit_default="100000000/minute",
            ratelimit_auth="100000/minute",
            log_level="warning",
            db_pool_size=max(args.concurrency_list),
        )
        from tradeflow.kit.keyring import load_keyring
        from tradeflow.observability.logging import configure_logging

        configure_logging("warning", "json")
        keyring = load_keyring(settings)
        db = Database.from_settings(settings, db_url)
        accounts, api_key = await seed(db, keyring, args.logins)
        app = create_app(settings, db, keyring=keyring)
        transport = ASGITransport(app=app, client=("127.0.0.1", 1))
        async with AsyncClient(transport=transport, base_url="http://bench") as client:
            login_times = []
            access = ""
            for email, secret in accounts:
                started = time.perf_counter()
                r = await client.post(
                    "/v1/auth/login",
                    json={"email": email, "password": PASSWORD,
                          "totp_code": pyotp.TOTP(secret).now()},
                )  # fmt: skip
                login_times.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
                access = r.json()["access_token"]
            login_times.sort()
            print(
                f"login (password+TOTP, argon2id t=3 m=64MiB p=4): n={len(login_times)} "
                f"p50={statistics.median(login_times) * 1000:.1f} ms "
                f"max={login_times[-1] * 1000:.1f} ms"
            )
            assert access, "no login succeeded"
            print("| credential | tasks | req/s | p50 ms | p99 ms | CPU µs/req | errors |")
            print("|---|---|---|---|---|---|---|")
            for tasks in args.concurrency_list:
                for label, token in (("API key", api_key), ("JWT", access)):
                    await hammer(client, token, 1.0, tasks)  # warm-up
                    r = await hammer(client, token, args.seconds, tasks)
                    print(
                        f"| {label} | {tasks} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                        f"| {r['cpu_us']:.0f} | {r['errors']:.0f} |"
                    )
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--logins", type=int, default=20)
    ns = parser.parse_args()
    ns.concurrency_list = [int(c) for c in ns.concurrency.split(",")]
    asyncio.run(main(ns))
