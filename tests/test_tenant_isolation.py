"""Tenant isolation, end to end: tenant A's credentials never reach tenant B's objects.

1. **The API walk.** Every operation in `app.openapi()` whose path has
   parameters is called with tenant A's all-scopes API key against objects of
   tenant B, and must answer 404 — never 200 (a leak) nor 403 (which would
   confirm the object exists).
2. **Factories.** Tenant B's objects come from factories that each context
   registers in `tests/<context>/isolation_factories.py`:
   `FACTORIES = {"<path param name or path template>": async factory(ctx) -> {param: value}}`,
   optional `BODIES = {"METHOD /v1/path/{template}": {...}}`, optional
   `EXEMPT = {"/v1/path/{template}": "why its parameters name no tenant's object"}`
   (e.g. a processor plugin's name) and optional `async def check_untouched(ctx,
   client)` (run after the walk). A path parameter without a factory or an
   exemption fails `test_every_path_parameter_has_a_factory`.
3. **RLS on its own.** With no repository filter at all, a tenant session for
   A cannot see, change or insert B's rows, and every table with a `tenant_id`
   column has row-level security enabled with a policy.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "identity"))

from identity_factories import make_api_key, make_tenant, make_user  # noqa: E402

Factory = Callable[[Any], Awaitable[dict[str, str]]]
PARAM = re.compile(r"{([^}]+)}")
METHODS = ("get", "post", "put", "patch", "delete")


def _load_registries() -> list[Any]:
    modules = []
    for path in sorted(TESTS.glob("*/isolation_factories.py")):
        if (path.parent / "__init__.py").exists():
            # A test package: import it as one, so its relative imports work.
            if str(TESTS) not in sys.path:
                sys.path.insert(0, str(TESTS))
            modules.append(importlib.import_module(f"{path.parent.name}.isolation_factories"))
            continue
        name = f"_isolation_{path.parent.name}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        sys.path.insert(0, str(path.parent))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


REGISTRIES = _load_registries()
FACTORIES: dict[str, Factory] = {k: v for m in REGISTRIES for k, v in m.FACTORIES.items()}
BODIES: dict[str, Any] = {k: v for m in REGISTRIES for k, v in getattr(m, "BODIES", {}).items()}
EXEMPT: dict[str, str] = {k: v for m in REGISTRIES for k, v in getattr(m, "EXEMPT", {}).items()}


@dataclass
class IsolationContext:
    db: Database
    keyring: Keyring
    tenant_a: Any
    tenant_b: Any
    memory: dict[str, Any] = field(default_factory=dict)

    def remember(self, key: str, value: Any) -> None:
        self.memory[key] = value

    def recalled(self, key: str) -> Any:
        return self.memory.get(key)


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for path, item in openapi["paths"].items():
        if not PARAM.search(path) or path in EXEMPT:
            continue
        for method in METHODS:
            if method in item:
                ops.append((method.upper(), path, item[method]))
    return ops


def _factory_for(path: str, param: str) -> Factory | None:
    return FACTORIES.get(path) or FACTORIES.get(param)


def test_every_path_parameter_has_a_factory(app: Any) -> None:
    missing = sorted(
        {
            f"{path} → {param}"
            for _, path, _ in _operations(app.openapi())
            for param in PARAM.findall(path)
            if _factory_for(path, param) is None
        }
    )
    assert not missing, (
        "No tenant-isolation factory for these path parameters; register one in "
        "tests/<context>/isolation_factories.py:\n  " + "\n  ".join(missing)
    )


# -- request bodies from the schema ---------------------------------------------------------------
def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def example(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A minimal value that satisfies `schema` (required members only)."""
    schema = _resolve(schema, spec)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(s, spec).get("type") != "null"]
            return example(options[0], spec)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example(part, spec)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type", "object")
    fmt = schema.get("format")
    if kind == "string":
        if fmt == "email":
            return "someone@example.com"
        if fmt == "uuid":
            return str(uuid.uuid4())
        if fmt == "date-time":
            return datetime.now(UTC).isoformat()
        if fmt == "date":
            return datetime.now(UTC).date().isoformat()
        if fmt in ("uri", "url"):
            return "https://example.com/"
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example(schema.get("items", {}), spec) for _ in range(count)]
    props = schema.get("properties", {})
    return {
        name: example(props[name], spec) for name in schema.get("required", []) if name in props
    }


def _body(method: str, path: str, op: dict[str, Any], spec: dict[str, Any]) -> Any:
    key = f"{method} {path}"
    if key in BODIES:
        return BODIES[key]
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return example(content["application/json"]["schema"], spec)


# -- the walk -------------------------------------------------------------------------------------
async def test_tenant_a_gets_404_for_every_object_of_tenant_b(
    app: Any, client: AsyncClient, rolled_back: Database, keyring: Keyring
) -> None:
    spec = app.openapi()
    tenant_a, tenant_b = await make_tenant(rolled_back), await make_tenant(rolled_back)
    ctx = IsolationContext(rolled_back, keyring, tenant_a, tenant_b)
    # Tenant A's most powerful credential: an API key with every scope.
    _, key_a = await make_api_key(rolled_back, tenant_a)
    headers = {"Authorization": f"Bearer {key_a}"}

    params_by_factory: dict[Factory, dict[str, str]] = {}
    failures: list[str] = []
    walked = 0
    for method, path, op in _operations(spec):
        values: dict[str, str] = {}
        for param in PARAM.findall(path):
            factory = _factory_for(path, param)
            if factory is None:
                continue  # reported by test_every_path_parameter_has_a_factory
            if factory not in params_by_factory:
                params_by_factory[factory] = await factory(ctx)
            values.update(params_by_factory[factory])
        if set(PARAM.findall(path)) - set(values):
            continue
        url = path.format(**values)
        body = _body(method, path, op, spec)
        r = await client.request(
            method, url, headers=headers, json=body if body is not None else None
        )
        walked += 1
        if r.status_code != 404:
            failures.append(f"{method} {path} → {r.status_code}: {r.text[:200]}")
    assert walked > 0
    assert not failures, "tenant A reached tenant B's objects:\n  " + "\n  ".join(failures)
    for module in REGISTRIES:
        check = getattr(module, "check_untouched", None)
        if check is not None:
            await check(ctx, client)


async def test_the_walk_would_catch_a_leak(
    app: Any, client: AsyncClient, rolled_back: Database
) -> None:
    """Tenant B's own key does reach B's objects: the 404s above come from isolation."""
    tenant_b = await make_tenant(rolled_back)
    made = await make_user(rolled_back, tenant_b, role="sales")
    _, key_b = await make_api_key(rolled_back, tenant_b)
    r = await client.get(f"/v1/users/{made.id}", headers={"Authorization": f"Bearer {key_b}"})
    assert r.status_code == 200


# -- RLS as a second wall -------------------------------------------------------------------------
async def _tenant_tables(db: Database) -> list[str]:
    async with db.system_session() as s:
        rows = await s.execute(
            text(
                "SELECT c.table_name FROM information_schema.columns c "
                "JOIN information_schema.tables t USING (table_schema, table_name) "
                "WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' "
                "AND t.table_type = 'BASE TABLE' ORDER BY 1"
            )
        )
        return list(rows.scalars())


async def test_every_tenant_owned_table_has_row_level_security(rolled_back: Database) -> None:
    tables = await _tenant_tables(rolled_back)
    assert "users" in tables
    async with rolled_back.system_session() as s:
        rows = await s.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, count(p.polname) AS policies "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_policy p ON p.polrelid = c.oid "
                "WHERE n.nspname = 'public' AND c.relname = ANY(:tables) "
                "GROUP BY c.relname, c.relrowsecurity"
            ),
            {"tables": [*tables, "tenants"]},
        )
        state = {r.relname: (r.relrowsecurity, r.policies) for r in rows}
    unprotected = [t for t in [*tables, "tenants"] if state.get(t, (False, 0)) != (True, 1)]
    assert not unprotected, (
        f"tables without RLS (enable_tenant_rls in the migration): {unprotected}"
    )


async def test_rls_hides_other_tenants_rows_without_any_filter(
    rolled_back: Database, keyring: Keyring
) -> None:
    a, b = await make_tenant(rolled_back), await make_tenant(rolled_back)
    for tenant in (a, b):
        await make_user(rolled_back, tenant, with_totp=True, keyring=keyring)
        await make_api_key(rolled_back, tenant)
    tables = await _tenant_tables(rolled_back)
    async with rolled_back.tenant_session(a.id) as s:
        assert (await s.execute(text("SELECT current_user"))).scalar_one() != "postgres"
        for table in tables:
            readable = (
                await s.execute(text("SELECT has_table_privilege(:t, 'SELECT')"), {"t": table})
            ).scalar_one()
            if not readable:
                continue  # request code cannot read it at all (worker-only): isolated already
            seen = set((await s.execute(text(f"SELECT DISTINCT tenant_id FROM {table}"))).scalars())
            assert seen <= {a.id}, f"{table}: tenant A's session sees {seen}"
        assert list((await s.execute(text("SELECT id FROM tenants"))).scalars()) == [a.id]
        # Writes to B's rows touch nothing.
        changed = await s.execute(
            text("UPDATE users SET role = 'auditor' WHERE tenant_id = :b"), {"b": b.id}
        )
        assert changed.rowcount == 0  # type: ignore[attr-defined]
        deleted = await s.execute(text("DELETE FROM api_keys WHERE tenant_id = :b"), {"b": b.id})
        assert deleted.rowcount == 0  # type: ignore[attr-defined]
    # Inserting a row for B from A's session is refused by the policy's WITH CHECK.
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="row-level security"):
        async with rolled_back.tenant_session(a.id) as s:
            await s.execute(
                text(
                    "INSERT INTO users (id, tenant_id, email, password_hash, role) "
                    "VALUES (:id, :b, 'sneaky@example.com', 'x', 'owner')"
                ),
                {"id": uuid.uuid4(), "b": b.id},
            )
    async with rolled_back.system_session() as s:
        seen_all = set((await s.execute(text("SELECT DISTINCT tenant_id FROM users"))).scalars())
    assert {a.id, b.id} <= seen_all
