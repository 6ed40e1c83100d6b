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
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import blake3

from arsenale.data.hashing import Chunk, chunk_table_digest, hash_small_file, is_digest
from arsenale.errors import BackendUnavailable, IntegrityError, InvalidInput, NotFound

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


class DataCache:
    """Blobs by digest in a local folder, entered by reflink, hard link or copy."""

    def __init__(self, root: str | os.PathLike[str], link_modes: tuple[str, ...] = DEFAULT_LINK_MODES) -> None:
        self.root = Path(root)
        self.link_modes = link_modes
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        self._made: set[Path] = set()
        self._failed: set[str] = set()  # modes this filesystem refused once: not tried again

    def path(self, digest: str) -> Path:
        _check(digest)
        return self._blobs / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

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
        """Enter `src` (whose digest was just computed) under `digest`: how (link mode), None if known.

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

    def add_bytes(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (verified against `digest` when given); returns its digest."""
        actual = blake3.blake3(data).hexdigest()
        if digest is not None and actual != digest:
            raise IntegrityError(f"received bytes do not match blob {digest}")
        if not self.has(actual):
            tmp = self.tmp_path(actual)
            with open(tmp, "wb") as out:
                out.write(data)
            self._commit(tmp, actual)
        return actual

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

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                f.seek(offset)
                return f.read(size)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the cache") from None

    def verify(self, digest: str, size: int, chunks: list[Chunk] | None = None) -> bool:
        """Whether the cached blob still holds the bytes its digest names."""
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
            return False

    def export(self, digest: str, dest: Path, modes: tuple[str, ...] | None = None) -> None:
        """Put the blob at `dest` (replacing what is there) by link or copy, atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.ars-tmp")
        try:
            place(self.path(digest), tmp, modes or self.link_modes)
            if os.stat(tmp).st_nlink == 1:  # an own copy (or clone): the user may edit it
                os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self, digest: str) -> int:
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
            return size
        except FileNotFoundError:
            return 0

    def digests(self) -> Iterator[tuple[str, os.stat_result]]:
        """Every cached blob's digest and stat."""
        if not self._blobs.is_dir():
            return
        for prefix in os.scandir(self._blobs):
            if len(prefix.name) != 2 or not prefix.is_dir():
                continue
            for entry in os.scandir(prefix.path):
                digest = prefix.name + entry.name
                if is_digest(digest):
                    yield digest, entry.stat()


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
