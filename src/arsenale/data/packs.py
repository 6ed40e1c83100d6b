"""Pack files: many small cached blobs appended to one file, so adding 10,000 small files creates one file.

Why: on ext4 here creating a file costs 0.1-0.6 ms, while appending 10,000 x 4 KiB to one file costs
~45 ms. One cache file per small blob made `arsenale data add` of a folder of small files slower than
DVC; one pack per bulk add makes it ~10x faster.

Layout, under the cache root:

    packs/<32 hex>.pack    immutable once renamed into place, read-only (0444)
    packs/.tmp-<32 hex>    a pack being written
    packs/index.db         SQLite (WAL): digest -> (pack, offset, size, added_ns)

A pack is `MAGIC` followed by entries, each a 32-byte raw digest, an 8-byte little-endian size and the
bytes; the index's offset is that of the bytes. The entry headers make a pack self-describing
(`scan_pack`), so the index can be rebuilt from the packs alone (`PackStore.reindex`).

Writing: a pack is written under a temporary name and renamed when complete, and only then are its index
rows committed (one transaction, INSERT OR IGNORE): a row never names bytes that are not on disk, and two
processes packing the same content both succeed (the later one's copies stay unindexed, and a pack none
of whose rows was kept is deleted at once). Packs are never modified in place. `compact` (run by gc)
deletes a pack whose entries are all dead and rewrites one more than half dead: the live entries are
copied (and verified) into a new pack, their rows moved in one transaction, then the old pack deleted. A
reader that looked a blob up just before such a move finds the old pack gone and looks it up again.

No pickle, and SQL only with parameters: the index is plain rows a user may inspect with `sqlite3`.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import blake3

from arsenale.data.localdb import open_local_db

MAGIC = b"ARSPACK1"
ENTRY = struct.Struct("<32sQ")  # raw digest, size
PACK_MAX_BLOB = 256 << 10
"""Blobs smaller than this may be packed; larger ones stay loose (one file each, linkable, mmap-able)."""
PACK_MIN_BLOBS = 16
"""Fewer new small blobs than this in one add are stored loose: a pack (a file, a rename and an index
transaction) costs about as much as that many loose files, and would only multiply tiny packs."""
PACK_TARGET_SIZE = 128 << 20
"""A writer starts a new pack beyond this size, so rewriting a half-dead pack stays a bounded copy."""
SQL_CHUNK = 500  # parameters per IN (...) query, under SQLite's limit on bound variables
WRITE_BUFFER = 1 << 20  # entries are joined and written this much at a time: one write per 4 KiB cost ~4x
TMP_PREFIX = ".tmp-"
SUFFIX = ".pack"
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    added_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""
# No index on `pack`: it doubled the cost of indexing a pack, and only gc (which scans anyway) asks by pack.


class Location(NamedTuple):
    pack: str
    offset: int
    size: int


class PackedBlob(NamedTuple):
    digest: str
    size: int
    added_ns: int


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - not POSIX
    return os.read(fd, size)  # pragma: no cover


def read_file(path: str | os.PathLike[str], size: int) -> bytes:
    """A small file's bytes, read with one `open` and (usually) one `read` of `size + 1` bytes.

    Several times cheaper than `open(path, "rb").read()` for a 4 KiB file. A file that grew since it was
    stat'ed returns more than `size` bytes (at most `size + 1`): callers compare lengths.
    """
    fd = os.open(path, _O_READ)
    try:
        data = os.read(fd, size + 1)
        if 0 < len(data) < size:  # a short read (or a file that shrank): read on to the end
            parts = [data]
            got = len(data)
            while got <= size:
                more = os.read(fd, size + 1 - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def scan_pack(path: str | os.PathLike[str]) -> Iterator[tuple[str, int, int]]:
    """(digest, offset of its bytes, size) of every whole entry of a pack, in order; stops at a torn tail."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return
        offset = len(MAGIC)
        end = os.fstat(f.fileno()).st_size
        while offset + ENTRY.size <= end:
            f.seek(offset)
            raw, size = ENTRY.unpack(f.read(ENTRY.size))
            start = offset + ENTRY.size
            if start + size > end:
                return
            yield raw.hex(), start, size
            offset = start + size


class _Writer:
    """Appends entries to a new pack under a temporary name; `seal` renames it and indexes its entries."""

    def __init__(self, store: "PackStore", roll: bool = True) -> None:
        self.store = store
        self.roll = roll
        self.inserted = 0
        self._file: BinaryIO | None = None
        self._name = ""
        self._tmp = ""
        self._offset = 0
        self._rows: list[tuple[str, str, int, int]] = []
        self._buffer: list[bytes] = []
        self._buffered = 0

    def append(self, digest: str, data: bytes) -> None:
        if self._file is None:
            self.store.folder.mkdir(parents=True, exist_ok=True)
            self._name = uuid.uuid4().hex + SUFFIX
            self._tmp = str(self.store.folder / f"{TMP_PREFIX}{uuid.uuid4().hex}")
            self._file = open(self._tmp, "xb", buffering=0)  # noqa: SIM115 - closed by seal/abort
            self._buffer, self._buffered = [MAGIC], len(MAGIC)
            self._offset = len(MAGIC)
        self._buffer += (ENTRY.pack(bytes.fromhex(digest), len(data)), data)
        self._buffered += ENTRY.size + len(data)
        self._rows.append((digest, self._name, self._offset + ENTRY.size, len(data)))
        self._offset += ENTRY.size + len(data)
        if self._buffered >= WRITE_BUFFER:
            self._flush()
        if self.roll and self._offset >= PACK_TARGET_SIZE:
            self.seal()

    def _flush(self) -> None:
        if self._buffer and self._file is not None:
            data = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0:]

    def seal(self) -> list[tuple[str, str, int, int]]:
        """Close and rename the pack, then index its rows (unless `roll` is off: the caller does); its rows."""
        if self._file is None:
            return []
        rows, tmp, final = self._rows, self._tmp, self.store.folder / self._name
        try:
            self._flush()
            self._file.close()
            self._file = None
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)  # the bytes are whole and in place before any row names them
        except BaseException:
            self.abort()
            raise
        self._rows = []
        if self.roll:
            inserted = self.store._insert(rows)
            if inserted == 0:  # every entry was indexed by someone else meanwhile: no row names this pack
                final.unlink(missing_ok=True)
            self.inserted += inserted
        return rows

    def abort(self) -> None:
        self._buffer, self._buffered = [], 0
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)
        self._rows = []


class PackStore:
    """The packs of one cache and their index. Thread-safe (one connection behind a lock); fork-safe."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / "index.db"
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._inherited: list[sqlite3.Connection] = []

    # ---- the index ----

    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        """The index connection; None if there is no index yet and `create` is off (a cache without packs)."""
        if self._pid != os.getpid():  # a forked child: never use (nor close) the parent's connection
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn, self._pid, self._lock = None, os.getpid(), threading.RLock()
        if self._conn is None:
            if not create and not self.index_path.is_file():
                return None
            self._conn = open_local_db(self.index_path, _SCHEMA, check_same_thread=False)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _write(self, statements: Iterable[tuple[str, Iterable[tuple[object, ...]]]]) -> list[int]:
        """Run (sql, rows) pairs in one immediate transaction; each one's count of changed rows."""
        with self._lock:
            db = self._db(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                counts = [db.executemany(sql, rows).rowcount for sql, rows in statements]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return counts

    def _insert(self, rows: list[tuple[str, str, int, int]]) -> int:
        now = time.time_ns()
        [inserted] = self._write([("INSERT OR IGNORE INTO blobs (digest, pack, offset, size, added_ns) "
                                   "VALUES (?, ?, ?, ?, ?)", [(*r, now) for r in rows])])
        return inserted

    def _select_in(self, sql: str, digests: Collection[str]) -> list[tuple[object, ...]]:
        """Rows of `sql` (which ends in `IN ({})`) for `digests`, queried in chunks of bound parameters."""
        out: list[tuple[object, ...]] = []
        if not digests:
            return out
        with self._lock:
            db = self._db()
            if db is None:
                return out
            ordered = list(digests)
            for i in range(0, len(ordered), SQL_CHUNK):
                part = ordered[i:i + SQL_CHUNK]
                out += db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return out

    def locate(self, digest: str) -> Location | None:
        with self._lock:
            db = self._db()
            row = None if db is None else db.execute(
                "SELECT pack, offset, size FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return Location(*row) if row else None

    def present(self, digests: Collection[str]) -> set[str]:
        """The digests among `digests` that the index names (one query per 500)."""
        return {str(r[0]) for r in self._select_in("SELECT digest FROM blobs WHERE digest IN ({})", digests)}

    def entries(self) -> list[PackedBlob]:
        with self._lock:
            db = self._db()
            rows = [] if db is None else db.execute("SELECT digest, size, added_ns FROM blobs").fetchall()
        return [PackedBlob(*r) for r in rows]

    def remove(self, digest: str) -> int:
        """Forget a packed blob (its bytes become dead space for gc to reclaim); its size, 0 if unknown."""
        loc = self.locate(digest)
        if loc is None:
            return 0
        self._write([("DELETE FROM blobs WHERE digest = ?", [(digest,)])])
        return loc.size

    # ---- reading ----

    def read(self, digest: str, offset: int = 0, size: int | None = None) -> bytes | None:
        """Bytes of a packed blob (or of a range of it); None when it is not packed or its pack is gone."""
        loc = self.locate(digest)
        for _ in range(2):
            if loc is None:
                return None
            start = min(max(offset, 0), loc.size)
            n = loc.size - start if size is None else max(0, min(size, loc.size - start))
            try:
                fd = os.open(self.folder / loc.pack, _O_READ)
            except FileNotFoundError:  # moved by a concurrent gc since we looked: look again, once
                again = self.locate(digest)
                if again == loc:
                    return None
                loc = again
                continue
            try:
                return _pread(fd, n, loc.offset + start)
            finally:
                os.close(fd)
        return None

    # ---- writing ----

    def add(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Append (digest, bytes) pairs to new packs and index them; how many were newly indexed.

        The caller vouches that each digest names its bytes (it just computed it, or verified it).
        """
        writer = _Writer(self)
        try:
            for digest, data in items:
                writer.append(digest, data)
            writer.seal()
        except BaseException:
            writer.abort()
            raise
        return writer.inserted

    # ---- maintenance ----

    def pack_files(self) -> list[os.DirEntry[str]]:
        if not self.folder.is_dir():
            return []
        return [e for e in os.scandir(self.folder) if e.name.endswith(SUFFIX) and not e.name.startswith(".")]

    def compact(self, dead: Collection[str], *, stale_before_ns: int, dry_run: bool = False) -> int:
        """Forget the `dead` blobs, then reclaim space: the bytes freed (or that would be, when `dry_run`).

        A pack left without live entries is deleted; one more than half dead is rewritten. A pack that no
        row names and that this call did not empty is deleted only once older than `stale_before_ns` (a
        writer killed between renaming it and indexing it), never while a live writer may be indexing it.
        """
        emptied_by_us: set[str] = set()
        dead_rows = self._select_in("SELECT digest, pack, size FROM blobs WHERE digest IN ({})", dead)
        with self._lock:
            db = self._db()
            stats: dict[str, tuple[int, int]] = {}
            if db is not None:
                sql = "SELECT pack, COUNT(*), SUM(size) FROM blobs GROUP BY pack"
                for pack, count, total in db.execute(sql):
                    stats[str(pack)] = (int(count), int(total))
        for _, pack, size in dead_rows:
            count, total = stats.get(str(pack), (0, 0))
            stats[str(pack)] = (count - 1, total - int(size))  # type: ignore[call-overload]
            emptied_by_us.add(str(pack))
        if dead_rows and not dry_run:
            self._write([("DELETE FROM blobs WHERE digest = ? AND pack = ?",
                          [(d, p) for d, p, _ in dead_rows])])
        freed = 0
        rewrite: list[str] = []
        for entry in self.pack_files():
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            count, total = stats.get(entry.name, (0, 0))
            live = len(MAGIC) + count * ENTRY.size + total
            if count <= 0:
                if entry.name in emptied_by_us or st.st_mtime_ns < stale_before_ns:
                    freed += st.st_size
                    if not dry_run:
                        os.unlink(entry.path)
            elif st.st_size - live > st.st_size // 2:
                freed += max(0, st.st_size - live)
                rewrite.append(entry.name)
        if rewrite and not dry_run:
            rows: dict[str, list[tuple[str, int, int]]] = {p: [] for p in rewrite}
            for digest, pack, offset, size in self._select_in(
                    "SELECT digest, pack, offset, size FROM blobs WHERE pack IN ({})", rewrite):
                rows[str(pack)].append((str(digest), int(offset), int(size)))  # type: ignore[call-overload]
            for pack in rewrite:
                freed -= self._rewrite(pack, sorted(rows[pack], key=lambda r: r[1]))
        if not dry_run:
            self._clean_tmp(stale_before_ns)
        return freed

    def _rewrite(self, pack: str, rows: list[tuple[str, int, int]]) -> int:
        """Copy `pack`'s live, intact entries (`rows`) to a new pack, move their rows, delete it. The bytes
        not freed after all (a concurrent gc moved the rows first: its copy wins, ours is dropped)."""
        writer = _Writer(self, roll=False)
        corrupt: list[tuple[str, str]] = []
        try:
            with open(self.folder / pack, "rb", buffering=0) as f:
                for digest, offset, size in rows:
                    data = _pread(f.fileno(), size, offset)
                    if len(data) != size or blake3.blake3(data).hexdigest() != digest:
                        corrupt.append((digest, pack))  # never carried over: checkout will refetch it
                        continue
                    writer.append(digest, data)
            new_rows = writer.seal()
        except FileNotFoundError:  # a concurrent gc got there first
            writer.abort()
            return 0
        except BaseException:
            writer.abort()
            raise
        new_pack = new_rows[0][1] if new_rows else ""
        moved = [(name, offset, digest, pack) for digest, name, offset, _ in new_rows]
        updated, _ = self._write([
            ("UPDATE blobs SET pack = ?, offset = ? WHERE digest = ? AND pack = ?", moved),
            ("DELETE FROM blobs WHERE digest = ? AND pack = ?", corrupt)])
        wasted = 0
        if new_pack and updated == 0:
            wasted = (self.folder / new_pack).stat().st_size
            (self.folder / new_pack).unlink(missing_ok=True)
        (self.folder / pack).unlink(missing_ok=True)
        return wasted

    def _clean_tmp(self, stale_before_ns: int) -> None:
        """Remove packs left half-written by killed writers."""
        if not self.folder.is_dir():
            return
        for e in os.scandir(self.folder):
            if e.name.startswith(TMP_PREFIX):
                try:
                    if e.stat().st_mtime_ns < stale_before_ns:
                        os.unlink(e.path)
                except OSError:
                    pass

    def reindex(self) -> int:
        """Index every entry of every pack that the index lacks (after losing `index.db`); rows added."""
        added = 0
        for entry in self.pack_files():
            rows = [(d, entry.name, off, size) for d, off, size in scan_pack(entry.path)]
            if rows:
                added += self._insert(rows)
        return added
