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
        # One outer transaction for the whole upgrade. Alembic otherwise commits SQLite after each
        # migration, which lets a second process read the half-done revision between two of them and
        # replay a migration the first is about to apply. On SQLite this transaction is BEGIN IMMEDIATE,
        # so the write lock is held from the revision read to the last migration.
        with connection.begin():
            context.configure(connection=connection, target_metadata=metadata,
                              render_as_batch=connection.dialect.name == "sqlite")
            context.run_migrations()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(4242001)"))
            connection.commit()
