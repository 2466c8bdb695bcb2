"""Schemathesis over `/openapi.json`: generated requests to every operation, authenticated
with an all-scopes API key, never get a 5xx, and every response matches the schema.

The app runs in-process on a database of its own (created, migrated, seeded and dropped
here), so whatever the fuzzer creates never meets another test's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import BaseModel
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi as schemathesis_asgi
from sqlalchemy.engine import make_url

from tradeflow.app import create_app
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.demo import seed_demo
from tradeflow.errors import install_error_handlers
from tradeflow.kit.keyring import Keyring
from tradeflow.migrations import upgrade
from tradeflow.observability.middleware import RequestContextMiddleware

# Bounded so the whole run stays well under a minute on two cores.
MAX_EXAMPLES = 4


def _admin(url: str) -> psycopg.Connection[Any]:
    u = make_url(url)
    host = u.query.get("host", u.host) if u.query else u.host
    return psycopg.connect(
        dbname="postgres",
        user=u.username,
        password=u.password,
        host=host if isinstance(host, str) else None,
        port=u.port,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def fuzz_target(
    server_url: str, settings: Settings, keyring: Keyring, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str]]:
    name = f"tffuzz_{uuid.uuid4().hex[:10]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        home: Path = tmp_path_factory.mktemp("fuzz-home")
        fuzz_settings = settings.model_copy(update={"database_url": url, "home": home})
        creds = seed_demo(fuzz_settings, url, keyring)
        # The engine connects lazily, on schemathesis' own event-loop thread, and is
        # disposed there when the app's lifespan ends.
        db = Database.from_settings(fuzz_settings, url)
        app = create_app(fuzz_settings, db, keyring=keyring, owns_db=True)
        yield app, str(creds["api_key"])
        schemathesis_asgi.shutdown_lifespans()
    finally:
        with _admin(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Item(BaseModel):
    """The planted-bug app's model (module level: annotations are resolved lazily)."""

    name: str
    quantity: int


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def fuzz(app: Any, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Run every operation of `app`'s schema; the number of operations and their failures."""
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations, failures = 0, []
    # One Hypothesis run per operation. (schemathesis' own pytest parametrisation is not
    # usable with a fixture-built schema on pytest 9; the strategy API is the same engine.)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same cases every run: a failure here is reproducible
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, FailureGroup) as exc:  # gather every operation's failure first
            failures.append(f"{operation.label}: {exc}")
    return operations, failures


def test_api_conforms_to_its_schema(fuzz_target: tuple[Any, str]) -> None:
    app, api_key = fuzz_target
    operations, failures = fuzz(app, {"Authorization": f"Bearer {api_key}"})
    assert operations > 10, "the schema lost its operations"
    assert failures == [], f"{len(failures)} of {operations} operations failed:\n\n" + "\n\n".join(
        failures
    )


def test_the_fuzzer_catches_5xx_and_schema_drift() -> None:
    """The same harness on a small app with two planted bugs reports exactly those two."""
    app = FastAPI()

    @app.get("/items/{item_id}", response_model=Item)
    async def get_item(item_id: int) -> JSONResponse:
        # Bypasses the response model: the body contradicts the documented schema.
        return JSONResponse({"name": 42})

    @app.post("/items", response_model=Item)
    async def create_item(item: Item) -> Item:
        if item.quantity < 0:
            raise RuntimeError("negative stock")  # an unhandled error: 500
        return item

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # As in the product: unexpected errors become 500 problem responses.
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=65536)

    operations, failures = fuzz(app, {})
    assert operations == 3
    by_operation = dict(f.split(": ", 1) for f in failures)
    assert sorted(by_operation) == ["GET /items/{item_id}", "POST /items"]
    assert "Server error" in by_operation["POST /items"]
    assert "Response violates schema" in by_operation["GET /items/{item_id}"]
