from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "migrations need a database URL"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # One advisory lock serialises concurrent `tradeflow migrate` runs
        # (several API processes starting at once on one database).
        connection.exec_driver_sql("SELECT pg_advisory_lock(74650001)")
        try:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(74650001)")
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `tradeflow migrate`")
run_migrations_online()
