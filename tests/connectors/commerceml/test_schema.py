"""The CommerceML tables: models and migrations agree (autogenerate finds nothing to do)."""

from __future__ import annotations

from schema_support import assert_models_match_migrations
from tradeflow.connectors.commerceml import models  # noqa: F401 (its tables join the metadata)

TABLES = {
    "commerceml_sessions",
    "commerceml_uploads",
    "commerceml_exchanges",
    "commerceml_order_changes",
    "commerceml_order_acks",
}


def test_models_match_the_migrations(database_url: str) -> None:
    assert_models_match_migrations(database_url, TABLES, unmodelled_fks_to="connector_instances")
