"""Alembic environment: runs against the engine handed over by arsenale.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from arsenale.store.tables import metadata

engine = context.config.attributes["engine"]

with engine.connect().execution_options(arsenale_write=True) as connection:
    if connection.dialect.name == "postgresql":
        # Two processes opening a new database at once must not both migrate it.
        connection.execute(text("SELECT pg_advisory_lock(4242001)"))
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(4242001)"))
            connection.commit()
