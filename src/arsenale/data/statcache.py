"""What each file's digest was when it last had this size, mtime and inode, so unchanged files are not re-hashed.

Rows live in a small SQLite file (`.arsenale/statcache.db`, WAL mode, safe
for concurrent processes). A row is trusted only when the file's (size,
mtime_ns, inode) are unchanged *and* its mtime is older than the moment the
file was hashed, as seen by the filesystem's own clock: a file written in the
same clock tick as its hashing ("racily clean", in git's words) might have
changed unseen, so it is hashed again next time and its row refreshed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arsenale.data.localdb import open_local_db

if TYPE_CHECKING:
    from arsenale.data.hashing import Chunk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    digest TEXT NOT NULL,
    chunks TEXT,
    checked_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clean (
    manifest TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    target TEXT NOT NULL,
    tree_signature TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Known:
    size: int
    mtime_ns: int
    ino: int
    digest: str
    chunks: tuple[Chunk, ...] | None
    checked_ns: int

    def matches(self, st: os.stat_result) -> bool:
        return (st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.ino
                and st.st_mtime_ns < self.checked_ns)


class StatCache:
    """(path, size, mtime_ns, inode) → digest, for files under one workspace."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_local_db(self.path, _SCHEMA)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def clock(self) -> int:
        """Now, by the filesystem's clock (the mtime of a file just written beside the cache)."""
        marker = self.path.with_name(self.path.name + ".clock")
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "wb") as f:
            f.write(b"\0")
        return marker.stat().st_mtime_ns

    def load(self, target: str) -> dict[str, Known]:
        """Rows for `target` (an absolute path) and everything under it."""
        if not self.path.exists():
            return {}
        rows = self._db().execute(
            "SELECT path, size, mtime_ns, ino, digest, chunks, checked_ns FROM stat "
            "WHERE path = ? OR (path >= ? AND path < ?)", (target, target + "/", target + "0")).fetchall()
        return {row[0]: Known(row[1], row[2], row[3], row[4],
                              tuple((int(s), str(d)) for s, d in json.loads(row[5])) if row[5] else None, row[6])
                for row in rows}

    def record(self, rows: list[tuple[str, os.stat_result, str, tuple[Chunk, ...] | None]], checked_ns: int) -> None:
        """Remember each (path, stat, digest, chunks), hashed no earlier than `checked_ns`."""
        if not rows:
            return
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO stat (path, size, mtime_ns, ino, digest, chunks, checked_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(p, st.st_size, st.st_mtime_ns, st.st_ino, d, json.dumps(c) if c else None, checked_ns)
                 for p, st, d, c in rows])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def mark_clean(self, manifest: str, manifest_digest: str, target: str, tree_signature: str) -> None:
        """Remember that `target`, with this stat signature, matched the manifest with these bytes."""
        from arsenale.data.scan import record_clean

        record_clean(self._db(), manifest, manifest_digest, target, tree_signature)

    def forget(self, target: str) -> None:
        if self.path.exists():
            self._db().execute("DELETE FROM stat WHERE path = ? OR (path >= ? AND path < ?)",
                               (target, target + "/", target + "0"))
