"""Engines for the metadata store: SQLite (WAL) embedded, PostgreSQL to scale out.

One engine per (URI, process): an engine inherited through `fork` shares
sockets with its parent, so a child builds its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from arsenale.errors import BackendUnavailable, InvalidInput

_LOCK = threading.Lock()
_ENGINES: dict[tuple[str, int], Engine] = {}
SQLITE_BUSY_TIMEOUT_MS = 60_000


def normalize_uri(uri: str) -> str:
    """Map user spellings onto SQLAlchemy driver URLs (psycopg 3 for PostgreSQL)."""
    if uri.startswith("postgresql://") or uri.startswith("postgres://"):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    if uri.startswith("sqlite:///") or uri.startswith("postgresql+psycopg://"):
        return uri
    raise InvalidInput(f"unsupported metadata store URI {uri!r}: use a path, sqlite:///…, or postgresql://…",
                       field="uri")


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool if path in (None, "", ":memory:") else None,
                           connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Manage transactions ourselves so writers can take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA mmap_size=268435456")  # reads straight from the page cache, no read() per page
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages per connection instead of 8
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writes: a deferred transaction that upgrades to a
        # write lock can fail with SQLITE_BUSY without waiting on the timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("arsenale_write")
                             else "BEGIN")

    return engine


def get_engine(uri: str) -> Engine:
    url = normalize_uri(uri)
    key = (url, os.getpid())
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if url.startswith("sqlite"):
                engine = _sqlite_engine(url)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
            from arsenale.store.migrate import upgrade_if_needed

            try:
                with _first_open_lock(url):
                    upgrade_if_needed(engine)
            except OperationalError as exc:
                engine.dispose()
                raise BackendUnavailable(f"cannot reach the metadata store at {hide_password(url)}: {exc.orig}") from exc
            _ENGINES[key] = engine
        return engine


@contextmanager
def _first_open_lock(url: str) -> Iterator[None]:
    """Serialise the first connection and migration of a SQLite file across processes.

    A brand-new file is switched to WAL by its first connection, and SQLite can answer a second
    process racing that switch with "database is locked" without waiting on the busy timeout.
    """
    path = make_url(url).database if url.startswith("sqlite") else None
    if not path or path == ":memory:":
        yield
        return
    from filelock import FileLock

    with FileLock(f"{path}.lock", timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        yield


def dispose_all() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


IN_LIST = 400  # values per IN (...) list: far below SQLite's bound-parameter limit


def in_chunks(items: Sequence[Any], n: int = IN_LIST) -> Iterator[Sequence[Any]]:
    """`items` in slices of at most `n`, for IN lists and batched statements."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def hide_password(url: str) -> str:
    """A database URL with its password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: serialised on SQLite, committed or rolled back as one."""
    with engine.connect().execution_options(arsenale_write=True) as conn:
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        with conn.begin():
            yield conn
