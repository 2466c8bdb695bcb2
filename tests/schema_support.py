"""Schema checks shared by each context's tests: models and migrations agree."""

from __future__ import annotations


def assert_models_match_migrations(
    database_url: str,
    tables: set[str],
    *,
    unmodelled_fks_to: str | None = None,
    foreign_fks_are_theirs: bool = False,
) -> None:
    """Autogenerate finds nothing to do for `tables` (the caller imports their models).
    Foreign keys to `unmodelled_fks_to` live in the migrations only: a context's models do not
    point into another context. With `foreign_fks_are_theirs`, constraints the database holds
    that point to a table outside `tables` are left out too: another context's migration added
    them to one of these tables (users.customer_id → customers.id, say)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from tradeflow.db import sync_url
    from tradeflow.kit.models import Base

    assert {t for t in Base.metadata.tables if t in tables} == tables

    def include(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if type_ == "table":
            return name in tables
        if (
            type_ == "foreign_key_constraint"
            and unmodelled_fks_to is not None
            and unmodelled_fks_to in (name or "")
        ):
            return False
        table = getattr(obj, "table", None)
        return table is None or table.name in tables

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_object": include, "compare_type": True}
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    if foreign_fks_are_theirs:
        diff = [
            d for d in diff if not (d[0] == "remove_fk" and d[1].referred_table.name not in tables)
        ]
    assert diff == []
