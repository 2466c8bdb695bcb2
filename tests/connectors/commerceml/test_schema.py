"""The CommerceML tables: models and migrations agree (autogenerate finds nothing to do)."""

from __future__ import annotations

from tradeflow.connectors.commerceml import models

TABLES = {
    "commerceml_sessions",
    "commerceml_uploads",
    "commerceml_exchanges",
    "commerceml_order_changes",
    "commerceml_order_acks",
}


def test_models_match_the_migrations(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from tradeflow.db import sync_url
    from tradeflow.kit.models import Base

    assert {t for t in Base.metadata.tables if t in TABLES} == TABLES, models.__name__

    def include(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if type_ == "table":
            return name in TABLES
        if type_ == "foreign_key_constraint" and "connector_instances" in (name or ""):
            # Kept in the migration only: the models stay inside their context.
            return False
        table = getattr(obj, "table", None)
        return table is None or table.name in TABLES

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_object": include, "compare_type": True}
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
