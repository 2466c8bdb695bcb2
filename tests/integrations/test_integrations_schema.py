"""The integrations tables: models and migrations agree (autogenerate finds nothing to do)."""

from __future__ import annotations

from schema_support import assert_models_match_migrations
from tradeflow.integrations import models  # noqa: F401 (its tables join the metadata)

TABLES = {
    "connector_instances",
    "external_refs",
    "sync_conflicts",
    "reconciliation_runs",
    "reconciliation_mismatches",
    "processor_settlements",
    "connector_pulls",
}


def test_models_match_the_migrations(database_url: str) -> None:
    assert_models_match_migrations(database_url, TABLES)
