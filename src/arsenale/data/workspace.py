"""`DataWorkspace`: version files and folders in place, like DVC, with BLAKE3 and content-defined chunks.

    ws = DataWorkspace.for_home(Path(".arsenale"), remote="s3://bucket/data")
    ws.add("data/images")          # hash, cache, write data/images.ars (commit it to git)
    ws.status()                    # what changed since each manifest
    ws.push(); ws.pull()           # mirror blobs to / from the remote
    ws.checkout("data/images.ars") # make the working copy match a manifest
    ws.gc()                        # drop cached blobs no manifest names

The workspace root is the folder that holds `.arsenale/`; every tracked path
and manifest lies inside it. Small files are one blob each: added in bulk, the
smallest (under `packs.PACK_MAX_BLOB`) are appended to a pack file, read once
for both hashing and packing; the others enter the local cache by reflink,
hard link or copy. Files of `params.threshold` bytes or more are also split
into content-defined chunks: the cache keeps the whole file, the remote keeps
chunks, so pushing a grown file uploads only its new chunks. Such a file is
copied into the cache while it is chunked, the chunker reading the copy (see
`DataCache.stage`). The remote holds
one object per blob or chunk whether the local cache packs it or not.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arsenale.data import hashing
from arsenale.data.cache import TMP_PREFIX, DataCache, DataRemote
from arsenale.data.chunking import DEFAULT_PARAMS, ChunkParams, chunk_file, chunk_ranges
from arsenale.data.manifest import SUFFIX, FileEntry, Manifest, manifest_path_for
from arsenale.data.packs import PACK_MAX_BLOB, read_file
from arsenale.data.results import (AddResult, CheckoutResult, DataDiff, FileChange, GcResult, StatusReport,
                                   TransferResult)
from arsenale.data.scan import file_digest, find_manifests, tree_signature, walk_files
from arsenale.data.statcache import Known, StatCache
from arsenale.errors import Conflict, IntegrityError, InvalidInput, NotFound

STALE_TMP_SECONDS = 3600
KEEP_READ_BYTES = 128 << 20
"""`add` keeps up to this many bytes of the packable files it hashes, so they are read once, not twice."""
HASH_BATCH = 256  # files per thread-pool task: one future per 4 KiB file cost more than hashing it
SLOW_READ_SECONDS = 40e-6  # a file read + hashed slower than this (page cache: ~10 µs) is waiting on the disk
TRANSFER_WINDOW = 64 << 20  # bytes of small blobs pulled before they are packed


@dataclass
class _Seen:
    """A file found in the working copy, with its digest (from the stat cache or hashed now)."""

    rel: str
    abspath: str
    stat: os.stat_result
    digest: str = ""
    chunks: tuple[hashing.Chunk, ...] | None = None

    def entry(self) -> FileEntry:
        return FileEntry(self.rel, self.stat.st_size, self.digest, self.chunks)


# ---- the service ----------------------------------------------------------------------


class DataWorkspace:
    """add / status / diff / checkout / push / pull / gc over one project folder."""

    def __init__(self, root: str | os.PathLike[str], cache: DataCache, remote: DataRemote | str | None = None,
                 *, statcache: StatCache | None = None, params: ChunkParams = DEFAULT_PARAMS,
                 jobs: int | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.cache = cache
        self.remote = DataRemote(remote) if isinstance(remote, str) else remote
        self.statcache = statcache or StatCache(cache.root.parent / "statcache.db")
        self.params = params
        self.jobs = jobs

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], remote: DataRemote | str | None = None,
                 **kwargs: Any) -> "DataWorkspace":
        """The workspace whose `.arsenale/` folder is `home`: the project root is its parent."""
        home = Path(os.path.realpath(home))
        return cls(home.parent, DataCache(home / "cache"), remote,
                   statcache=StatCache(home / "statcache.db"), **kwargs)

    def close(self) -> None:
        self.statcache.close()
        self.cache.close()

    # ---- paths ----

    def _inside(self, path: Path, what: str = "path") -> Path:
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise InvalidInput(f"{path} is outside the workspace {self.root}", field=what)
        return real

    def rel(self, path: Path) -> str:
        try:
            return Path(os.path.realpath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _split(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """A target or its manifest, as (target path, manifest path), both inside the workspace."""
        p = Path(os.path.abspath(path))
        if p.name.endswith(SUFFIX):
            manifest = p
            target = p.with_name(p.name[: -len(SUFFIX)])
        else:
            target, manifest = p, manifest_path_for(p)
        self._inside(target.parent)
        target = Path(os.path.realpath(target.parent)) / target.name
        manifest = target.parent / manifest.name
        home = self.cache.root.parent
        if target == home or home in target.parents or target == self.root:
            raise InvalidInput(f"{path} cannot be tracked: it is the workspace or its .arsenale folder",
                               field="path")
        return target, manifest

    def manifests(self) -> list[Path]:
        """Every `*.ars` manifest under the root (hidden folders and tracked folders are not entered)."""
        return [Path(p) for p in find_manifests(str(self.root))]

    def _load(self, manifest_path: Path) -> tuple[Manifest, Path]:
        self._inside(manifest_path.parent, "manifest")
        manifest = Manifest.read(manifest_path)
        return manifest, manifest.base(manifest_path.parent)

    def _selected(self, targets: Iterable[str | os.PathLike[str]] | None) -> list[Path]:
        chosen = [self._split(t)[1] for t in targets] if targets else self.manifests()
        for m in chosen:
            if not m.is_file():
                raise NotFound(f"no manifest {self.rel(m)}: run `arsenale data add` first", field="manifest")
        return chosen

    # ---- scanning and hashing ----

    def _walk(self, target: Path) -> list[_Seen]:
        return [_Seen(rel, abspath, st) for rel, abspath, st in walk_files(str(target))]

    def _hash(self, target: Path, keep: dict[str, bytes] | None = None,
              stored: dict[str, int] | None = None) -> tuple[list[_Seen], int]:
        """The target's files with digests; the count actually hashed (the rest came from the stat cache).

        With `keep`, the bytes of hashed files small enough to be packed are put there (path -> bytes, up
        to `KEEP_READ_BYTES` in all), so that `add` need not read them again. With `stored`, the chunked
        files hashed also enter the cache as they are hashed (see `_chunk`), counted there by link mode.
        """
        seen = self._walk(target)
        known = self.statcache.load(str(target))
        todo: list[_Seen] = []
        for s in seen:
            k = known.get(s.abspath)
            if k is not None and k.matches(s.stat):
                s.digest, s.chunks = k.digest, k.chunks
            else:
                todo.append(s)
        if todo:
            checked = self.statcache.clock()
            small = [s for s in todo if s.stat.st_size < self.params.threshold]
            if keep is None:
                digests = hashing.parallel_map(lambda s: hashing.hash_small_file(s.abspath, s.stat.st_size),
                                               small, self.jobs)
                for s, d in zip(small, digests):
                    s.digest = str(d)
            else:
                self._hash_keeping(small, keep)
            for s in todo:
                if s.stat.st_size >= self.params.threshold:
                    s.chunks = self._chunk(s, None if self._likely_cached(s, known.get(s.abspath)) else stored)
                    s.digest = hashing.chunk_table_digest(s.chunks)
            self.statcache.record([(s.abspath, s.stat, s.digest, s.chunks) for s in todo], checked)
        return seen, len(todo)

    def _likely_cached(self, s: _Seen, known: Known | None) -> bool:
        """Whether a large file whose stat changed may well hold the very version last seen there, and
        that version is cached: same size, only touched or rewritten as it was. Such a file is hashed in
        place first; `add` copies it afterwards if it did change after all."""
        return (known is not None and known.chunks is not None and known.size == s.stat.st_size
                and self.cache.has(known.digest))

    def _chunk(self, s: _Seen, stored: dict[str, int] | None) -> tuple[hashing.Chunk, ...]:
        """A large file's chunks. With `stored`, its blob also enters the cache: the cache's copy is made
        while the chunker reads it, right behind the copier (`DataCache.stage`), so the copy costs little
        wall time and the digest names the bytes stored even if the file is edited meanwhile."""
        if stored is None:
            return tuple(chunk_file(s.abspath, self.params, jobs=self.jobs))
        with self.cache.stage(s.abspath, s.stat.st_size) as staged:
            if staged is None:  # a hard link comes first: the file itself is linked once hashed
                return tuple(chunk_file(s.abspath, self.params, jobs=self.jobs))
            chunks = tuple(chunk_file(staged.path, self.params, jobs=self.jobs, ready=staged.ready))
            mode = staged.commit(hashing.chunk_table_digest(chunks))
        if mode is not None:
            stored[mode] = stored.get(mode, 0) + 1
        return chunks

    def _hash_keeping(self, files: list[_Seen], keep: dict[str, bytes]) -> None:
        """Hash small files, keeping the bytes of the packable ones (read with one `read` each) in `keep`.

        Packable files are read in the calling thread while that is fast (they are in the page cache):
        there, ~10 µs a file, threads only fight over the GIL (2 threads took 1.4x, 4 threads 2.2x as long
        as one). Once a batch reads slowly (a cold cache, a network disk, larger files), the rest goes to a
        thread pool, which overlaps the waits (a cold 10,000-file folder: 1.0 s in one thread, 0.45 s in 4).
        """
        budget = KEEP_READ_BYTES  # a soft cap: threads may overshoot it by a few files
        packable = [s for s in files if s.stat.st_size < PACK_MAX_BLOB]
        larger = [s for s in files if s.stat.st_size >= PACK_MAX_BLOB]

        def run(batch: list[_Seen]) -> None:
            nonlocal budget
            for s in batch:
                size = s.stat.st_size
                if size <= budget:
                    budget -= size
                    data = read_file(s.abspath, size)
                    s.digest = hashing.hash_bytes(data)
                    if len(data) == size:  # else it changed since its stat: packing re-reads and refuses it
                        keep[s.abspath] = data
                else:
                    s.digest = hashing.hash_small_file(s.abspath, size)

        batches = [packable[i:i + HASH_BATCH] for i in range(0, len(packable), HASH_BATCH)]
        jobs = self.jobs or hashing.default_jobs()
        done = 0
        while done < len(batches):
            started = time.perf_counter()
            run(batches[done])
            done += 1
            if jobs > 1 and time.perf_counter() - started > SLOW_READ_SECONDS * HASH_BATCH:
                break
        _map_batches(run, batches[done:], jobs)
        digests = hashing.parallel_map(lambda s: hashing.hash_small_file(s.abspath, s.stat.st_size),
                                       larger, self.jobs)
        for s, d in zip(larger, digests):
            s.digest = str(d)

    # ---- add ----

    def add(self, path: str | os.PathLike[str]) -> AddResult:
        """Hash `path` (a file or folder), store its blobs in the cache and write `PATH.ars` beside it."""
        target, manifest_path = self._split(path)
        if not target.exists():
            raise NotFound(f"no such file or folder: {path}", field="path")
        if target.is_symlink():
            raise InvalidInput(f"{path} is a symbolic link: track what it points to", field="path")
        kind = "dir" if target.is_dir() else "file"
        kept: dict[str, bytes] = {}
        stored: dict[str, int] = {}  # new blobs by link mode; chunked files hashed now are stored as hashed
        seen, hashed = self._hash(target, keep=kept, stored=stored)
        todo = {s.digest: s for s in seen}
        whole = [(s.abspath, s.digest, s.stat.st_size) for s in todo.values() if s.chunks is None]
        chunked = [(s.abspath, s.digest, s.stat.st_size) for s in todo.values() if s.chunks is not None]
        batches = [self.cache.add_files(whole, data=kept, jobs=self.jobs)]
        kept.clear()
        # the chunked files not stored as they were hashed: known from the stat cache, or hashed in place
        batches.append(self.cache.add_files(chunked, pack=False, jobs=self.jobs))
        for batch in batches:
            for mode, n in batch.items():
                stored[mode] = stored.get(mode, 0) + n
        manifest = Manifest.build(target.name, kind, (s.entry() for s in seen))
        old = None
        if manifest_path.is_file():
            try:
                old = Manifest.read(manifest_path)
            except InvalidInput:
                old = None
        changed = old is None or old != manifest
        if changed:
            manifest.write(manifest_path)
        return AddResult(manifest=self.rel(manifest_path), path=self.rel(target), digest=manifest.digest,
                         files=len(manifest.files), size=manifest.size, hashed=hashed,
                         new_blobs=sum(stored.values()), stored_by=stored, changed=changed)

    # ---- status ----

    def status(self, targets: Iterable[str | os.PathLike[str]] | None = None) -> list[StatusReport]:
        """For each manifest (all under the root by default): files added, removed or modified since."""
        reports = []
        for manifest_path in self._selected(targets):
            manifest, base = self._load(manifest_path)
            target = manifest_path.parent / manifest.path
            report = StatusReport(manifest=self.rel(manifest_path), path=self.rel(target))
            if not target.exists():
                report.missing = True
                reports.append(report)
                continue
            if (manifest.kind == "dir") != target.is_dir():
                report.modified = [manifest.path]
                reports.append(report)
                continue
            seen, report.hashed = self._hash(target)
            now = {s.rel: s.digest for s in seen}
            then = manifest.by_path()
            report.added = sorted(p for p in now if p not in then)
            report.removed = sorted(p for p in then if p not in now)
            report.modified = sorted(p for p, e in then.items() if p in now and now[p] != e.digest)
            reports.append(report)
            if report.clean and not report.hashed:
                # Every file was vouched for by a stat-cache row that is not racily clean, so the tree's
                # stat fingerprint now stands for this manifest: the next status can answer from it alone.
                self.statcache.mark_clean(str(manifest_path), file_digest(str(manifest_path)), str(target),
                                          tree_signature([(s.rel, s.abspath, s.stat) for s in seen]))
        return reports

    # ---- diff ----

    def version(self, ref: str | os.PathLike[str]) -> tuple[Manifest, Path, str]:
        """A manifest file, or a tracked path as it is now: (manifest, base folder, label)."""
        p = Path(ref)
        if p.name.endswith(SUFFIX) and p.is_file():
            manifest = Manifest.read(p)
            return manifest, manifest.base(p.parent), str(ref)
        if p.exists():
            target = Path(os.path.realpath(p))
            seen, _ = self._hash(target)
            kind = "dir" if target.is_dir() else "file"
            return Manifest.build(target.name, kind, (s.entry() for s in seen)), (
                target if kind == "dir" else target.parent), str(ref)
        raise NotFound(f"{ref} is neither a manifest nor a file or folder", field="version")

    def diff(self, a: str | os.PathLike[str], b: str | os.PathLike[str], *, tables: bool = True) -> DataDiff:
        """Files added, removed and changed from version `a` to version `b`; tabular files compared in depth."""
        ma, base_a, label_a = self.version(a)
        mb, base_b, label_b = self.version(b)
        out = DataDiff(a=label_a, b=label_b, a_digest=ma.digest, b_digest=mb.digest)
        ea, eb = ma.by_path(), mb.by_path()
        if ma.kind == mb.kind == "file":  # two versions of one file, maybe under different names
            ea, eb = {"": ma.files[0]}, {"": mb.files[0]}
        for p in sorted(eb.keys() - ea.keys()):
            out.added.append(FileChange(p or mb.path, None, eb[p].size, None, eb[p].digest))
        for p in sorted(ea.keys() - eb.keys()):
            out.removed.append(FileChange(p or ma.path, ea[p].size, None, ea[p].digest, None))
        for p in sorted(ea.keys() & eb.keys()):
            if ea[p].digest != eb[p].digest:
                out.changed.append(FileChange(p or mb.path, ea[p].size, eb[p].size, ea[p].digest, eb[p].digest))
        if tables:
            from arsenale.data import tabular_diff

            for change in out.changed:
                key = change.path if ma.kind == "dir" or mb.kind == "dir" else ""
                if not tabular_diff.is_tabular(change.path):
                    continue
                with contextlib.ExitStack() as stack:
                    old = self._readable(ea[key], base_a, stack)
                    new = self._readable(eb[key], base_b, stack)
                    if old is None or new is None:
                        out.tables[change.path] = {
                            "error": "a version's bytes are not in the cache or working copy"}
                        continue
                    out.tables[change.path] = tabular_diff.diff_tables(old, new, name=change.path)
        return out

    def _readable(self, entry: FileEntry, base: Path, stack: contextlib.ExitStack) -> Path | None:
        """A local file holding `entry`'s bytes: the working copy if it still matches, else the verified blob
        (a packed blob as a temporary file, removed when `stack` closes)."""
        working = base / entry.path
        try:
            st = working.stat()
            known = self.statcache.load(str(working)).get(str(working))
            if known is not None and known.matches(st) and known.digest == entry.digest:
                return working
        except OSError:
            pass
        try:
            self._ensure_blob(entry)
            return stack.enter_context(self.cache.as_file(entry.digest))
        except (IntegrityError, NotFound):
            return None

    # ---- checkout ----

    def checkout(self, targets: Iterable[str | os.PathLike[str]] | None = None, *,
                 force: bool = False) -> list[CheckoutResult]:
        """Make each tracked path match its manifest, from verified cached blobs (refetched if corrupt).

        Nothing is written until every blob needed is in hand and no change would
        be lost: a working file that differs from the manifest and whose content
        is in no cached blob is a conflict unless `force`.
        """
        return [self._checkout_one(m, force) for m in self._selected(targets)]

    def _checkout_one(self, manifest_path: Path, force: bool) -> CheckoutResult:
        manifest, base = self._load(manifest_path)
        target = manifest_path.parent / manifest.path
        result = CheckoutResult(manifest=self.rel(manifest_path))
        real_base = self._inside(base)
        if manifest.kind == "dir" and target.exists() and not target.is_dir():
            if not force and not self.cache.has(hashing.hash_small_file(target)):
                raise Conflict(f"{self.rel(target)} is a file with uncached changes (use --force)", field="path")
            target.unlink()
        current: dict[str, _Seen] = {}
        if target.exists():
            if manifest.kind == "file" and target.is_dir():
                raise Conflict(f"{self.rel(target)} is a folder; the manifest names a file", field="path")
            current = {s.rel: s for s in self._hash(target)[0]}
        wanted = manifest.by_path()
        write = [e for p, e in wanted.items() if p not in current or current[p].digest != e.digest]
        drop = [s for p, s in current.items() if p not in wanted]
        result.unchanged = len(wanted) - len(write)
        at_risk = [current[e.path] for e in write if e.path in current] + drop
        cached = self.cache.has_many(s.digest for s in at_risk)
        lost = [s.rel for s in at_risk if s.digest not in cached]
        if lost and not force:
            shown = ", ".join(lost[:5]) + (" …" if len(lost) > 5 else "")
            raise Conflict(f"checkout would lose changes not in the cache: {shown} "
                           f"(run `arsenale data add` first, or use --force)", field="path")
        for e in write:  # every destination must stay inside the tracked folder
            dest = base / e.path
            parent = Path(os.path.realpath(dest.parent)) if dest.parent.exists() else None
            if parent is not None and parent != real_base and real_base not in parent.parents:
                raise InvalidInput(f"{e.path} would be written outside {self.rel(base)}", field="manifest")
        for digest, entry in {e.digest: e for e in write}.items():
            if self._ensure_blob(entry):
                result.refetched.append(digest)
        checked = self.statcache.clock()
        written = []
        for e in write:
            dest = base / e.path
            self._make_parents(dest.parent, real_base)
            self.cache.export(e.digest, dest)
            result.restored.append(e.path)
            written.append((str(dest), dest.stat(), e.digest, e.chunks))
        for s in drop:
            os.unlink(s.abspath)
            result.removed.append(s.rel)
        self.statcache.record(written, checked)
        return result

    def _make_parents(self, folder: Path, real_base: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(folder))
        if real != real_base and real_base not in real.parents:
            raise InvalidInput(f"{folder} leads outside {real_base}", field="manifest")

    def _ensure_blob(self, entry: FileEntry) -> bool:
        """Make sure the cache holds `entry`'s verified blob; True when it had to be fetched from the remote."""
        chunks = list(entry.chunks) if entry.chunks else None
        if self.cache.verify(entry.digest, entry.size, chunks):
            return False
        if self.cache.has(entry.digest):
            self.cache.remove(entry.digest)  # corrupt: never serve it again
            what = "is corrupt"
        else:
            what = "is not in the cache"
        if self.remote is None:
            raise IntegrityError(f"blob {entry.digest} ({entry.path}) {what} and no remote is configured")
        self._fetch(entry)
        return True

    def _fetch(self, entry: FileEntry) -> None:
        assert self.remote is not None
        remote = self.remote
        if entry.chunks:
            parts = hashing.parallel_map(lambda c: remote.download(c[1]), list(entry.chunks), self.jobs)
            self.cache.assemble(iter(bytes(p) for p in parts), entry.digest, list(entry.chunks))  # type: ignore[arg-type]
        else:
            self.cache.add_bytes(remote.download(entry.digest), entry.digest)

    # ---- push / pull ----

    def _need_remote(self) -> DataRemote:
        if self.remote is None:
            raise InvalidInput("no remote: pass --remote URL or set ARSENALE_DATA_REMOTE", field="remote")
        return self.remote

    def _entries(self, targets: Iterable[str | os.PathLike[str]] | None) -> dict[str, FileEntry]:
        out: dict[str, FileEntry] = {}
        for m in self._selected(targets):
            for e in self._load(m)[0].files:
                out.setdefault(e.digest, e)
        return out

    def push(self, targets: Iterable[str | os.PathLike[str]] | None = None) -> TransferResult:
        """Upload the blobs (chunks, for large files) the remote lacks, each whole and verified."""
        remote = self._need_remote()
        objects: dict[str, tuple[str, int, int]] = {}  # object digest -> (blob digest, offset, size)
        for entry in self._entries(targets).values():
            if entry.chunks:
                for offset, size, digest in chunk_ranges(list(entry.chunks)):
                    objects.setdefault(digest, (entry.digest, offset, size))
            else:
                objects.setdefault(entry.digest, (entry.digest, 0, entry.size))
        there = remote.existing()
        missing = [d for d in objects if d not in there]
        result = TransferResult(remote=remote.url, objects=len(objects), already_there=len(objects) - len(missing))

        def upload(digest: str) -> int:
            blob, offset, size = objects[digest]
            data = self.cache.read_range(blob, offset, size)
            if len(data) != size or hashing.hash_bytes(data) != digest:
                raise IntegrityError(f"cached blob {blob} is corrupt; not pushing it (re-add or pull the data)")
            remote.upload(digest, data)
            return size

        for size in hashing.parallel_map(upload, missing, self.jobs or 8):
            result.transferred += 1
            result.bytes += int(size)  # type: ignore[call-overload]
        return result

    def pull(self, targets: Iterable[str | os.PathLike[str]] | None = None, *,
             force: bool = False) -> TransferResult:
        """Fetch the blobs the cache lacks from the remote, then check the working copy out."""
        remote = self._need_remote()
        entries = self._entries(targets)
        cached = self.cache.has_many(entries)
        missing = [e for e in entries.values() if e.digest not in cached]
        result = TransferResult(remote=remote.url, objects=len(entries), already_there=len(entries) - len(missing))
        small = [e for e in missing if not e.chunks and e.size < PACK_MAX_BLOB]
        window: list[FileEntry] = []
        held = 0
        for i, e in enumerate(small):  # downloaded in parallel, a window at a time, packed together
            window.append(e)
            held += e.size
            if i + 1 == len(small) or held >= TRANSFER_WINDOW:
                datas = hashing.parallel_map(lambda w: remote.download(w.digest), window, self.jobs or 8)
                self.cache.add_blobs([(w.digest, d) for w, d in zip(window, datas)])  # type: ignore[misc]
                window, held = [], 0
        for e in missing:
            if e.chunks or e.size >= PACK_MAX_BLOB:
                self._fetch(e)
        result.transferred = len(missing)
        result.bytes = sum(e.size for e in missing)
        self.checkout(targets, force=force)
        return result

    # ---- gc ----

    def gc(self, *, dry_run: bool = False) -> GcResult:
        """Remove cached blobs that no manifest under the root names; report the bytes freed.

        A blob still hard-linked from a working file frees no space: it is
        removed but counted as 0 bytes freed. An unreadable manifest stops gc
        before anything is removed.
        """
        started = time.time_ns()
        referenced: set[str] = set()
        for m in self.manifests():
            referenced |= self._load(m)[0].blob_digests()
        result = GcResult(dry_run=dry_run)
        dead = []
        kept: set[str] = set()
        removed: dict[str, None] = {}
        for blob in self.cache.digests():  # a blob may be stored twice (loose and packed): counted once
            if blob.digest in referenced or blob.added_ns >= started:  # new since gc began: a concurrent add
                kept.add(blob.digest)
                continue
            dead.append(blob)
            removed[blob.digest] = None
        result.bytes_freed = self.cache.discard(dead, dry_run=dry_run,
                                                stale_before_ns=started - STALE_TMP_SECONDS * 10**9)
        result.kept = len(kept)
        result.removed = len(removed)
        result.removed_digests = list(removed)
        if not dry_run:
            self._clean_tmp()
        return result

    def _clean_tmp(self) -> None:
        """Remove temporary files left by killed writers (beside the blobs, or in the old tmp/ folder)."""
        cutoff = time.time() - STALE_TMP_SECONDS
        folders = [self.cache.root / "tmp"]  # (the packs folder is cleaned by the pack compaction)
        blobs = self.cache.path("0" * 64).parent.parent
        if blobs.is_dir():
            folders += [Path(e.path) for e in os.scandir(blobs) if e.is_dir()]
        for folder in folders:
            if not folder.is_dir():
                continue
            for e in os.scandir(folder):
                if folder.name != "tmp" and not e.name.startswith(TMP_PREFIX):
                    continue
                try:
                    if e.stat().st_mtime < cutoff:
                        os.unlink(e.path)
                except OSError:
                    pass


def _map_batches(fn: Any, batches: list[Any], jobs: int) -> list[Any]:
    """`fn` over `batches` in a thread pool of `jobs` (in order); inline for one job."""
    if jobs <= 1 or len(batches) <= 1:
        return [fn(b) for b in batches]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(fn, batches))
