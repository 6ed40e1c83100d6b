"""The small SQLite files kept beside the data cache (the stat cache, the pack index).

Several `arsenale data` processes may share one: WAL lets readers go on while one writes, and a long busy
timeout makes a second writer wait its turn instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_local_db(path: str | os.PathLike[str], schema: str, *,
                  check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (callers open their own transactions), the schema created if missing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA busy_timeout = 60000")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(schema)
    return conn
