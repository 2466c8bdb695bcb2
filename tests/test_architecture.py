"""Context boundaries: a bounded context never imports another context's `models` or
`repository`. Contexts talk through each other's `service` functions and through events;
their tables are their own (CONTRIBUTING.md, docs/architecture.md)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tradeflow"

CONTEXTS = frozenset(
    {
        "identity",
        "customers",
        "catalog",
        "orders",
        "payments",
        "ledger",
        "integrations",
        "events",
        "notifications",
        "analytics",
        "flags",
        "risk",
        "governance",
        "console",
        "webhooks",
        "connectors",
    }
)
PRIVATE = frozenset({"models", "repository"})


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}"


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) `from … import` target."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _owner_and_part(name: str) -> tuple[str, str] | None:
    """For `tradeflow.<context>.<part>[...]`, the context and its module part."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "tradeflow" and parts[1] in CONTEXTS:
        return parts[1], parts[2]
    return None


def scan_source(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """Every import in `module`'s source that reaches into another context's private parts."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "tradeflow" or parts[1] not in CONTEXTS:
        return []
    own = parts[1]
    found: list[Violation] = []

    def check(name: str, line: int) -> None:
        hit = _owner_and_part(name)
        if hit is not None and hit[0] != own and hit[1] in PRIVATE:
            found.append(Violation(module, line, name))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            if _owner_and_part(base) is not None:
                check(base, node.lineno)
            else:  # `from tradeflow.orders import models`: the names may be the modules
                for alias in node.names:
                    check(f"{base}.{alias.name}", node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            check(node.args[0].value, node.lineno)
    return found


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def scan_tree(root: Path = SRC) -> list[Violation]:
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(path)
        found += scan_source(path.read_text(), module, is_package=is_package)
    return found


def test_no_context_imports_another_contexts_models_or_repository() -> None:
    violations = scan_tree()
    assert violations == [], (
        "contexts must use each other's service functions or events, not their tables:\n  "
        + "\n  ".join(map(str, violations))
    )


def test_the_scan_covers_the_contexts_that_exist() -> None:
    present = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    scanned = present & CONTEXTS
    assert {"identity", "events"} <= scanned
    assert sum(1 for _ in SRC.rglob("*.py")) > 20


@pytest.mark.parametrize(
    ("source", "module", "imported"),
    [
        (
            "import tradeflow.identity.models\n",
            "tradeflow.orders.service",
            "tradeflow.identity.models",
        ),
        (
            "from tradeflow.catalog.repository import PriceRepository\n",
            "tradeflow.orders.service",
            "tradeflow.catalog.repository",
        ),
        (
            "from tradeflow.ledger import models as ledger_models\n",
            "tradeflow.payments.service",
            "tradeflow.ledger.models",
        ),
        (
            "from ..customers.models import Customer\n",
            "tradeflow.orders.service",
            "tradeflow.customers.models",
        ),
        (
            "from .. import identity\nfrom ..identity import repository\n",
            "tradeflow.webhooks.service",
            "tradeflow.identity.repository",
        ),
        (
            "def f():\n    from tradeflow.orders.models import Order\n",
            "tradeflow.connectors.rest_erp.plugin",
            "tradeflow.orders.models",
        ),
        (
            "import importlib\nm = importlib.import_module('tradeflow.events.repository')\n",
            "tradeflow.risk.rules",
            "tradeflow.events.repository",
        ),
        (
            "from ...catalog.models import Product\n",
            "tradeflow.console.catalog.pages",
            "tradeflow.catalog.models",
        ),
        ("from ..orders import models\n", "tradeflow.ledger", "tradeflow.orders.models"),
    ],
)
def test_the_scan_catches_a_violation(source: str, module: str, imported: str) -> None:
    is_package = module == "tradeflow.ledger"
    found = scan_source(source, module, is_package=is_package)
    assert [v.imported for v in found] == [imported]
    assert found[0].module == module


@pytest.mark.parametrize(
    ("source", "module"),
    [
        # A context's own private parts, absolutely or relatively.
        ("from tradeflow.orders.models import Order\n", "tradeflow.orders.service"),
        ("from .repository import OrderRepository\n", "tradeflow.orders.service"),
        # Another context's public surface.
        ("from tradeflow.catalog.service import price_for\n", "tradeflow.orders.service"),
        ("from tradeflow.identity.auth import TenantSession\n", "tradeflow.orders.endpoints"),
        ("from tradeflow.identity.principal import Principal\n", "tradeflow.ledger.endpoints"),
        # Shared modules and code outside any context.
        ("from tradeflow.kit.models import Base\n", "tradeflow.orders.models"),
        ("from tradeflow.identity.models import User\n", "tradeflow.demo"),
        ("from tradeflow.orders import models\n", "tradeflow.migrations.env"),
    ],
)
def test_the_scan_allows_what_the_rules_allow(source: str, module: str) -> None:
    assert scan_source(source, module) == []
