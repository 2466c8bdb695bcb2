"""End to end: `tradeflow up --demo` as a real process on the embedded PostgreSQL.

Two instances run side by side (own home, own port); each answers `/readyz`, its demo owner
logs in with password + TOTP, `/v1/me` works with the access token and with the API key,
`/metrics` has the latency histogram, and SIGTERM stops the process — embedded PostgreSQL
included — with exit code 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from e2e_support import (
    READY_TIMEOUT,
    Instance,
    await_ready,
    free_port,
    kill_leftovers,
    postgres_serving,
    start,
    stop,
)

from tradeflow.runtime import HANDLE_LIST, forget_dead_handles

pytestmark = pytest.mark.slow


@pytest.fixture
def two_instances() -> Iterator[tuple[Instance, Instance]]:
    # Short paths: the embedded server's Unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="tf-e2e-"))
    instances: list[Instance] = []
    try:
        ports = free_port(), free_port()
        while ports[0] == ports[1]:
            ports = free_port(), free_port()
        # One after the other: each start (migrations, argon2 for the demo users) is
        # CPU-bound, and each gets the full readiness budget on two cores.
        instances.append(start(root / "a", ports[0]))
        await_ready(instances[0], time.monotonic() + READY_TIMEOUT)
        instances.append(start(root / "b", ports[1]))
        await_ready(instances[1], time.monotonic() + READY_TIMEOUT)
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            kill_leftovers(instance)
        shutil.rmtree(root, ignore_errors=True)


def log_in(client: httpx.Client, creds: dict[str, Any]) -> str:
    r = client.post(
        "/v1/auth/login",
        json={
            "email": creds["email"],
            "password": creds["password"],
            "totp_code": pyotp.TOTP(creds["totp_secret"]).now(),
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    assert body["refresh_token"]
    token: str = body["access_token"]
    return token


def check_instance(instance: Instance) -> dict[str, Any]:
    creds = instance.credentials()
    assert set(creds) >= {"tenant_id", "email", "password", "totp_secret", "api_key", "base_url"}
    assert creds["base_url"] == instance.base_url
    with httpx.Client(base_url=instance.base_url, timeout=30) as client:
        # Without the TOTP code the owner is asked for it.
        no_code = client.post(
            "/v1/auth/login", json={"email": creds["email"], "password": creds["password"]}
        )
        assert no_code.status_code == 401
        assert no_code.headers["content-type"] == "application/problem+json"
        assert no_code.json()["type"].endswith("mfa-required")

        token = log_in(client, creds)
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["tenant_id"] == creds["tenant_id"]

        by_key = client.get("/v1/me", headers={"Authorization": f"Bearer {creds['api_key']}"})
        assert by_key.status_code == 200, by_key.text
        assert by_key.json()["tenant_id"] == creds["tenant_id"]

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        histogram = [
            line
            for line in metrics.text.splitlines()
            if line.startswith("tradeflow_http_request_duration_seconds")
        ]
        assert any(
            line.startswith("tradeflow_http_request_duration_seconds_bucket")
            and 'route="/v1/me"' in line
            and 'status="200"' in line
            for line in histogram
        ), "\n".join(histogram)
    return creds


def test_two_demo_instances_side_by_side_then_clean_stop(
    two_instances: tuple[Instance, Instance],
) -> None:
    a, b = two_instances
    # Both answered /readyz within READY_TIMEOUT of their start (the fixture) and still do.
    for instance in (a, b):
        assert httpx.get(instance.base_url + "/readyz", timeout=10).status_code == 200

    creds_a, creds_b = check_instance(a), check_instance(b)
    assert creds_a["tenant_id"] != creds_b["tenant_id"]
    assert a.pgdata != b.pgdata
    assert postgres_serving(a.pgdata), "instance A is not on its own embedded server"
    assert postgres_serving(b.pgdata), "instance B is not on its own embedded server"
    # Separate databases: A's API key means nothing to B.
    other = httpx.get(
        b.base_url + "/v1/me", headers={"Authorization": f"Bearer {creds_a['api_key']}"}
    )
    assert other.status_code == 401

    # Stopping A leaves B serving.
    assert stop(a) == 0, a.output()
    assert postgres_serving(a.pgdata) == [], f"PostgreSQL left running for {a.pgdata}"
    assert httpx.get(b.base_url + "/readyz", timeout=10).status_code == 200

    assert stop(b) == 0, b.output()
    assert postgres_serving(b.pgdata) == [], f"PostgreSQL left running for {b.pgdata}"
    assert "Tradeflow stopped." in a.output()


def test_handles_of_killed_processes_are_forgotten(tmp_path: Path) -> None:
    """A `kill -9`ed process must not keep the embedded server alive for ever after."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / HANDLE_LIST).write_text(json.dumps([dead.pid, os.getpid()]))
    assert forget_dead_handles(tmp_path) == [dead.pid]
    assert json.loads((tmp_path / HANDLE_LIST).read_text()) == [os.getpid()]
    assert forget_dead_handles(tmp_path) == []
    assert forget_dead_handles(tmp_path / "no-such-folder") == []
