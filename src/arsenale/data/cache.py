"""The local content-addressed cache of data blobs, and the remote it mirrors to.

Layout (the artifact store's): `<root>/blobs/<2 hex>/<62 hex>`, temporary files
in `<root>/tmp/`. A file enters the cache by the cheapest safe route: a reflink
(copy-on-write clone, `ioctl FICLONE`) where the filesystem has one, else a
hard link, else one copy. Cached blobs are read-only (mode 0444). Every entry
is made under a temporary name and renamed into place, so concurrent adds of
the same content are safe and no reader ever sees a partial blob.

Note a hard link shares the working file's inode: the working file becomes
read-only too, and writing into it in place (as root, who ignores the mode)
would alter the cached blob. Reads therefore verify digests, and `checkout`
refetches a blob that no longer matches from the remote.

A large file (one that is chunked) enters by `stage`, before its digest is
known: a reflink at once, or a copy made under a temporary name in
`<root>/tmp/` *while* the file is chunked, the chunker reading the copy right
behind the copier (see `staging`); it is renamed to its digest once that is
known. So the copy costs little wall time, and the digest names the bytes
stored even if the working file changes meanwhile. (With hard links first,
the file is hashed, then linked, as small files are.)

Small blobs added in bulk (`add_files`, `add_blobs`) go to pack files instead,
`<root>/packs/<uuid>.pack`, indexed in `<root>/packs/index.db` (see `packs`):
creating one file per 4 KiB blob cost more than everything else `data add`
does. Blobs may therefore be *loose* (one file, the layout above: large files,
chunked files, `add_bytes`, caches written before packs) or *packed*; every
read (`has`, `read_blob`, `read_range`, `verify`, `export`, `as_file`,
`digests`, `remove`) looks at both, loose first. `path` names only the loose
file: a caller that needs a real file for any blob uses `as_file`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import blake3

from arsenale.data.hashing import Chunk, chunk_table_digest, hash_small_file, is_digest, parallel_map
from arsenale.data.packs import PACK_MAX_BLOB, PACK_MIN_BLOBS, PackStore, read_file
from arsenale.data.staging import BackgroundCopy, Staged
from arsenale.errors import BackendUnavailable, Conflict, IntegrityError, InvalidInput, NotFound

FICLONE = 0x40049409  # _IOW(0x94, 9, int) on Linux
LINK_MODES = ("reflink", "hardlink", "copy")
DEFAULT_LINK_MODES = ("reflink", "copy")
"""Hard links are opt-in: an edit in place through a hard-linked working file (root ignores the
read-only bit) would silently change the cached version too."""
_LINK_REFUSED = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES)


def _check(digest: str) -> str:
    if not is_digest(digest):
        raise InvalidInput(f"not a BLAKE3 hex digest: {digest!r}", field="digest")
    return digest


SMALL_COPY = 8 << 20
TMP_PREFIX = ".tmp-"


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy one file. Small files by one read and one write: `shutil.copyfile`'s sendfile path costs
    ~0.4 ms a file here, ten times a plain read/write, which dominates adding thousands of small files."""
    if os.path.getsize(src) > SMALL_COPY:
        shutil.copyfile(src, dst)
        return
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as out:
        out.write(data)


def reflink(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> bool:
    """Clone `src` to a new file `dst` sharing its extents; False where the filesystem cannot."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    with open(src, "rb") as s:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(fd, FICLONE, s.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dst)
            return False
        os.close(fd)
    return True


def place(src: str | os.PathLike[str], dst: str | os.PathLike[str], modes: tuple[str, ...]) -> str:
    """Make `dst` (a new path) hold `src`'s bytes by the first mode that works; returns that mode."""
    for mode in modes:
        if mode == "reflink":
            if reflink(src, dst):
                return mode
        elif mode == "hardlink":
            try:
                os.link(src, dst)
                return mode
            except OSError as exc:
                if exc.errno not in _LINK_REFUSED:
                    raise
        elif mode == "copy":
            copy_file(src, dst)
            return mode
        else:
            raise InvalidInput(f"unknown link mode {mode!r}; choose from {', '.join(LINK_MODES)}",
                               field="link")
    raise InvalidInput("no link mode could place the file (add 'copy' to the modes)", field="link")


class CachedBlob(NamedTuple):
    """One stored copy of a blob, as gc sees it."""

    digest: str
    size: int
    added_ns: int  # a loose blob's ctime, a packed blob's indexing time: gc spares what is newer than itself
    packed: bool
    shared: bool  # a loose blob hard-linked elsewhere: removing it frees no space


def _verify_bytes(data: bytes, digest: str, size: int, chunks: list[Chunk] | None) -> bool:
    if len(data) != size:
        return False
    if not chunks:
        return blake3.blake3(data).hexdigest() == digest
    view, offset = memoryview(data), 0
    for chunk_size, chunk_digest in chunks:
        if blake3.blake3(view[offset:offset + chunk_size]).hexdigest() != chunk_digest:
            return False
        offset += chunk_size
    return offset == size and chunk_table_digest(chunks) == digest


class DataCache:
    """Blobs by digest in a local folder: loose (entered by reflink, hard link or copy) or in pack files."""

    def __init__(self, root: str | os.PathLike[str], link_modes: tuple[str, ...] = DEFAULT_LINK_MODES) -> None:
        self.root = Path(root)
        self.link_modes = link_modes
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        self.packs = PackStore(self.root / "packs")
        self._made: set[Path] = set()
        self._failed: set[str] = set()  # modes this filesystem refused once: not tried again

    def close(self) -> None:
        self.packs.close()

    def path(self, digest: str) -> Path:
        """Where the blob's loose file is (or would be). A packed blob has none: see `as_file`."""
        _check(digest)
        return self._blobs / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file() or self.packs.locate(digest) is not None

    def has_many(self, digests: Iterable[str]) -> set[str]:
        """The digests among `digests` that the cache holds, loose or packed (one index query per 500)."""
        return self._has_many({_check(d) for d in digests})

    def _has_many(self, wanted: set[str]) -> set[str]:
        found = self.packs.present(wanted)
        rest = wanted - found
        if rest and self._blobs.is_dir():
            prefixes = set(os.listdir(self._blobs))  # a fresh or all-packed cache: no stat per digest
            found.update(d for d in rest if d[:2] in prefixes and os.path.isfile(self.path(d)))
        return found

    def tmp_path(self, digest: str) -> Path:
        """A temporary name beside the blob's final one. One shared temporary folder whose entries are
        renamed away as fast as they arrive made each file creation ~5x slower on ext4 here."""
        folder = self.path(digest).parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"

    def _commit(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        if final.parent not in self._made:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(final.parent)
        try:
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def add_file(self, src: str | os.PathLike[str], digest: str) -> str | None:
        """Enter `src` (whose digest was just computed) loose under `digest`: how (link mode), None if known.

        A hard link is made straight at the final name: `link(2)` is atomic and
        the inode is already whole, so no temporary name is needed.
        """
        final = self.path(digest)
        if final.exists():
            return None
        if final.parent not in self._made:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(final.parent)
        for mode in self.link_modes:
            if mode in self._failed:
                continue
            if mode == "hardlink":
                try:
                    os.link(src, final)
                except FileExistsError:
                    return None
                except OSError as exc:
                    if exc.errno not in _LINK_REFUSED:
                        raise
                    self._failed.add(mode)
                    continue
                os.chmod(final, 0o444)
                return mode
            tmp = self.tmp_path(digest)
            if mode == "reflink":
                if not reflink(src, tmp):
                    self._failed.add(mode)
                    continue
            elif mode == "copy":
                copy_file(src, tmp)
            else:
                raise InvalidInput(f"unknown link mode {mode!r}; choose from {', '.join(LINK_MODES)}",
                                   field="link")
            self._commit(tmp, digest)
            return mode
        raise InvalidInput("no link mode could store the file (add 'copy' to the modes)", field="link")

    @contextlib.contextmanager
    def stage(self, src: str | os.PathLike[str], size: int) -> Iterator[Staged | None]:
        """Start entering the first `size` bytes of `src`, by the first link mode that works, before its digest
        is known: a reflink at once, a copy in a background thread. None when a hard link comes first: the
        file itself is linked once hashed (`add_file`). Not committed on leaving the block, it is discarded.
        """
        staged = self._start(src, size)
        try:
            yield staged
        finally:
            if staged is not None:
                staged.discard()

    def _start(self, src: str | os.PathLike[str], size: int) -> Staged | None:
        for mode in self.link_modes:
            if mode in self._failed:
                continue
            if mode == "hardlink":
                return None
            if mode not in LINK_MODES:
                raise InvalidInput(f"unknown link mode {mode!r}; choose from {', '.join(LINK_MODES)}",
                                   field="link")
            self._tmp.mkdir(parents=True, exist_ok=True)
            tmp = self._tmp / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            if mode == "copy":
                return Staged(tmp, mode, self._file_staged, BackgroundCopy(src, tmp, size))
            if not reflink(src, tmp):
                self._failed.add(mode)
                continue
            if tmp.stat().st_size != size:
                tmp.unlink()
                raise Conflict(f"{src} changed size while it was being added: add it again", field="path")
            return Staged(tmp, mode, self._file_staged)
        raise InvalidInput("no link mode could store the file (add 'copy' to the modes)", field="link")

    def _file_staged(self, tmp: Path, digest: str) -> bool:
        """Rename a whole staged file to its blob's name; False (and it is removed) if the blob was cached."""
        if self.path(digest).exists():
            tmp.unlink(missing_ok=True)
            return False
        self._commit(tmp, digest)
        return True

    def add_files(self, items: Sequence[tuple[str, str, int]], *, data: Mapping[str, bytes] | None = None,
                  pack: bool = True, jobs: int | None = None) -> dict[str, int]:
        """Enter many files, each (path, digest just computed, size): how many new blobs each way went.

        Digests the cache already holds are skipped (one batched lookup). When at least `PACK_MIN_BLOBS`
        new blobs are smaller than `PACK_MAX_BLOB` (and `pack` is on), those go to a pack ("pack" in the
        result), their bytes taken from `data` (path -> the bytes that were hashed) or read again, when
        their size is re-checked; the others are entered loose, one by one (`add_file`). Packing copies
        whatever the link modes: a pack shares no inode with a working file, which stays writable.
        """
        unique: dict[str, tuple[str, str, int]] = {}
        for item in items:
            unique.setdefault(_check(item[1]), item)
        known = self._has_many(set(unique))
        new = [item for d, item in unique.items() if d not in known]
        small = [item for item in new if item[2] < PACK_MAX_BLOB] if pack else []
        if len(small) < PACK_MIN_BLOBS:
            small = []
        packed = {item[1] for item in small}
        loose = [item for item in new if item[1] not in packed]
        stored: dict[str, int] = {}
        if small:
            kept = data or {}

            def contents() -> Iterator[tuple[str, bytes]]:
                for path, digest, size in small:
                    blob = kept.get(path)
                    if blob is None:
                        blob = read_file(path, size)
                    if len(blob) != size:
                        raise Conflict(f"{path} changed while it was being added: add it again", field="path")
                    yield digest, blob

            stored["pack"] = self.packs.add(contents())
        for mode in parallel_map(lambda item: self.add_file(item[0], item[1]), loose, jobs):
            if mode is not None:
                stored[str(mode)] = stored.get(str(mode), 0) + 1
        return {mode: n for mode, n in stored.items() if n}

    def add_bytes(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` loose (verified against `digest` when given); returns its digest."""
        actual = blake3.blake3(data).hexdigest()
        if digest is not None and actual != digest:
            raise IntegrityError(f"received bytes do not match blob {digest}")
        if not self.has(actual):
            tmp = self.tmp_path(actual)
            with open(tmp, "wb") as out:
                out.write(data)
            self._commit(tmp, actual)
        return actual

    def add_blobs(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Store many (digest, bytes), each verified: packed when enough are small, else loose. New ones."""
        unique: dict[str, bytes] = {}
        for digest, data in items:
            if blake3.blake3(data).hexdigest() != _check(digest):
                raise IntegrityError(f"received bytes do not match blob {digest}")
            unique.setdefault(digest, data)
        known = self._has_many(set(unique))
        new = {d: b for d, b in unique.items() if d not in known}
        small = {d: b for d, b in new.items() if len(b) < PACK_MAX_BLOB}
        if len(small) < PACK_MIN_BLOBS:
            small = {}
        for digest, data in new.items():
            if digest not in small:
                self.add_bytes(data, digest)
        return (self.packs.add(small.items()) if small else 0) + len(new) - len(small)

    def assemble(self, parts: Iterator[bytes], digest: str, chunks: list[Chunk]) -> None:
        """Write a chunked file's blob from its chunks' bytes, in order, verifying each and the whole."""
        tmp = self.tmp_path(digest)
        try:
            with open(tmp, "wb") as out:
                for (size, chunk_digest), data in zip(chunks, parts, strict=True):
                    if len(data) != size or blake3.blake3(data).hexdigest() != chunk_digest:
                        raise IntegrityError(f"chunk {chunk_digest} of blob {digest} is corrupt")
                    out.write(data)
            if chunk_table_digest(chunks) != digest:
                raise IntegrityError(f"the chunk table does not match blob {digest}")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._commit(tmp, digest)

    def read_blob(self, digest: str) -> bytes:
        """A blob's bytes, loose or packed (not verified: see `verify`)."""
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
        data = self.packs.read(digest)
        if data is None:
            raise NotFound(f"blob {digest} is not in the cache")
        return data

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError:
            pass
        data = self.packs.read(digest, offset, size)
        if data is None:
            raise NotFound(f"blob {digest} is not in the cache")
        return data

    def verify(self, digest: str, size: int, chunks: list[Chunk] | None = None) -> bool:
        """Whether the cached blob (loose, else packed) still holds the bytes its digest names."""
        path = self.path(digest)
        try:
            if path.stat().st_size != size:
                return False
            if not chunks:
                return hash_small_file(path, size) == digest
            with open(path, "rb") as f:
                for chunk_size, chunk_digest in chunks:
                    if blake3.blake3(f.read(chunk_size)).hexdigest() != chunk_digest:
                        return False
            return chunk_table_digest(chunks) == digest
        except FileNotFoundError:
            pass
        data = self.packs.read(digest)
        return data is not None and _verify_bytes(data, digest, size, chunks)

    def export(self, digest: str, dest: Path, modes: tuple[str, ...] | None = None) -> None:
        """Put the blob at `dest` (replacing what is there) by link or copy, atomically.

        A packed blob is always copied: its bytes are written to a temporary file then renamed.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.ars-tmp")
        try:
            try:
                place(self.path(digest), tmp, modes or self.link_modes)
            except FileNotFoundError:
                tmp.unlink(missing_ok=True)
                data = self.packs.read(digest)
                if data is None:
                    raise NotFound(f"blob {digest} is not in the cache") from None
                with open(tmp, "xb") as out:
                    out.write(data)
            if os.stat(tmp).st_nlink == 1:  # an own copy (or clone): the user may edit it
                os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def as_file(self, digest: str) -> Iterator[Path]:
        """A real file holding the blob, for readers that want a path: the loose file itself, or for a
        packed blob a temporary copy under `<root>/tmp/`, deleted on leaving the block."""
        path = self.path(digest)
        if path.is_file():
            yield path
            return
        data = self.packs.read(digest)
        if data is None:
            raise NotFound(f"blob {digest} is not in the cache")
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{digest[:16]}.{uuid.uuid4().hex[:12]}.blob"
        try:
            tmp.write_bytes(data)
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, digest: str) -> int:
        """Drop the blob, loose and packed (a packed one's bytes are dead space until gc); bytes dropped."""
        path = self.path(digest)
        size = 0
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass
        return size + self.packs.remove(digest)

    def loose(self) -> Iterator[tuple[str, os.stat_result]]:
        """Every loose blob's digest and stat."""
        if not self._blobs.is_dir():
            return
        for prefix in os.scandir(self._blobs):
            if len(prefix.name) != 2 or not prefix.is_dir():
                continue
            for entry in os.scandir(prefix.path):
                digest = prefix.name + entry.name
                if is_digest(digest):
                    yield digest, entry.stat()

    def digests(self) -> Iterator[CachedBlob]:
        """Every stored copy of every blob: the loose ones, then the packed ones."""
        for digest, st in self.loose():
            yield CachedBlob(digest, st.st_size, st.st_ctime_ns, False, st.st_nlink > 1)
        for b in self.packs.entries():
            yield CachedBlob(b.digest, b.size, b.added_ns, True, False)

    def discard(self, blobs: Iterable[CachedBlob], *, stale_before_ns: int, dry_run: bool = False) -> int:
        """Remove these stored copies (from `digests`) and reclaim pack space; the bytes freed.

        Dead packed entries are dropped from the index, then packs are compacted (see `PackStore.compact`);
        packs left by writers killed before `stale_before_ns` are removed too.
        """
        freed = 0
        dead_packed: list[str] = []
        for b in blobs:
            if b.packed:
                dead_packed.append(b.digest)
                continue
            if not dry_run:
                self.path(b.digest).unlink(missing_ok=True)
            freed += 0 if b.shared else b.size
        return freed + self.packs.compact(dead_packed, stale_before_ns=stale_before_ns, dry_run=dry_run)


class DataRemote:
    """Where pushed blobs go: any fsspec URL or local folder, same `blobs/` layout.

    Each blob is uploaded whole or not at all: on a local or `file://` remote it
    is written under a temporary name and renamed; on an object store it is one
    PUT. So an interrupted push leaves only complete blobs, and the next push
    skips them.
    """

    def __init__(self, url: str, **storage_options: object) -> None:
        import fsspec

        self.url = url.rstrip("/") or url
        try:
            self._fs, base = fsspec.core.url_to_fs(self.url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise InvalidInput(f"cannot open remote {url!r}: {exc}", field="remote") from None
        self._base = base.rstrip("/")
        protocol = self._fs.protocol
        self._local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def _key(self, digest: str) -> str:
        _check(digest)
        return f"{self._base}/blobs/{digest[:2]}/{digest[2:]}"

    def existing(self) -> set[str]:
        """Digests already on the remote (one listing, not one request per blob)."""
        try:
            keys = self._fs.find(f"{self._base}/blobs")
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise BackendUnavailable(f"cannot list remote {self.url}: {exc}") from None
        out = set()
        for key in keys:
            parts = str(key).rstrip("/").rsplit("/", 2)
            if len(parts) == 3 and is_digest(parts[1] + parts[2]):
                out.add(parts[1] + parts[2])
        return out

    def upload(self, digest: str, data: bytes) -> None:
        key = self._key(digest)
        if self._local:
            parent = key.rsplit("/", 1)[0]
            os.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{digest[2:]}.{uuid.uuid4().hex[:12]}.tmp"
            try:
                with open(tmp, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, key)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self._fs.pipe_file(key, data)

    def download(self, digest: str) -> bytes:
        try:
            data = bytes(self._fs.cat_file(self._key(digest)))
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from remote {self.url}") from None
        if blake3.blake3(data).hexdigest() != digest:
            raise IntegrityError(f"blob {digest} on remote {self.url} does not match its digest")
        return data
