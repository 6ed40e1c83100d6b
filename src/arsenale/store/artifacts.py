"""Content-addressed blob store: BLAKE3 digests, atomic writes, verified reads.

Blobs live at `blobs/<2 hex>/<62 hex>` under a root that is a local folder or
any fsspec URL. Identical content is stored once. A blob is written under a
temporary name and renamed (local) or uploaded in one PUT (object stores), so
readers never see half a file; reads re-hash and refuse content that no longer
matches its digest.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import IO, BinaryIO, Protocol

import blake3

from arsenale.errors import IntegrityError, InvalidInput, NotFound

CHUNK = 1 << 20
DIGEST_HEX = 64


def _check_digest(digest: str) -> str:
    if len(digest) != DIGEST_HEX or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput(f"not a BLAKE3 hex digest: {digest!r}", field="digest")
    return digest


def hash_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def hash_file(path: str | Path) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if os.path.getsize(path):  # mmap of an empty file fails
        h.update_mmap(str(path))
    return h.hexdigest()


class ArtifactStore(Protocol):
    """What every artifact backend offers."""

    root: str

    def put_file(self, path: str | Path) -> tuple[str, int]: ...
    def put_bytes(self, data: bytes) -> tuple[str, int]: ...
    def exists(self, digest: str) -> bool: ...
    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes: ...
    def download(self, digest: str, dest: str | Path, *, verify: bool = True) -> Path: ...
    def delete(self, digest: str) -> None: ...


class LocalArtifactStore:
    """Blobs in a local folder; the embedded default."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).expanduser().resolve())
        self._blobs = Path(self.root) / "blobs"
        self._tmp = Path(self.root) / "tmp"

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self._blobs / digest[:2] / digest[2:]

    def _commit_tmp(self, tmp: Path, digest: str) -> None:
        final = self._path(digest)
        if final.exists():
            tmp.unlink(missing_ok=True)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)

    def _new_tmp(self) -> tuple[Path, BinaryIO]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix=f"{uuid.uuid4().hex}.")
        return Path(name), os.fdopen(fd, "wb")

    def put_file(self, path: str | Path) -> tuple[str, int]:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no such file: {src}", field="path")
        tmp, out = self._new_tmp()
        h = blake3.blake3()
        size = 0
        try:
            with out, open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            self._commit_tmp(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hash_bytes(data)
        if self._path(digest).exists():
            return digest, len(data)
        tmp, out = self._new_tmp()
        try:
            with out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self._commit_tmp(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest, len(data)

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self._path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the artifact store") from None

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        with self.open(digest) as f:
            data = f.read()
        if verify and hash_bytes(data) != digest:
            raise IntegrityError(f"blob {digest} does not match its digest: the artifact was altered")
        return data

    def download(self, digest: str, dest: str | Path, *, verify: bool = True) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        h = blake3.blake3()
        try:
            with self.open(digest) as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if verify and h.hexdigest() != digest:
                raise IntegrityError(f"blob {digest} does not match its digest: the artifact was altered")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)


class FsspecArtifactStore:
    """Blobs in any fsspec filesystem (S3-compatible, GCS, Azure, memory)."""

    def __init__(self, url: str, **storage_options: object) -> None:
        import fsspec

        self.root = url.rstrip("/")
        self._fs, self._base = fsspec.core.url_to_fs(self.root, **storage_options)

    def _key(self, digest: str) -> str:
        _check_digest(digest)
        return f"{self._base}/blobs/{digest[:2]}/{digest[2:]}"

    def put_file(self, path: str | Path) -> tuple[str, int]:
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"no such file: {src}", field="path")
        digest = hash_file(src)
        if not self.exists(digest):
            # One PUT: an object store shows the object whole or not at all.
            self._fs.put_file(str(src), self._key(digest))
        return digest, src.stat().st_size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hash_bytes(data)
        if not self.exists(digest):
            self._fs.pipe_file(self._key(digest), data)
        return digest, len(data)

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._key(digest)))

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        try:
            data = self._fs.cat_file(self._key(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the artifact store") from None
        if verify and hash_bytes(data) != digest:
            raise IntegrityError(f"blob {digest} does not match its digest: the artifact was altered")
        return bytes(data)

    def download(self, digest: str, dest: str | Path, *, verify: bool = True) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            try:
                self._fs.get_file(self._key(digest), str(tmp))
            except FileNotFoundError:
                raise NotFound(f"blob {digest} is missing from the artifact store") from None
            if verify and hash_file(tmp) != digest:
                raise IntegrityError(f"blob {digest} does not match its digest: the artifact was altered")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def delete(self, digest: str) -> None:
        try:
            self._fs.rm_file(self._key(digest))
        except FileNotFoundError:
            pass


def open_artifact_store(url: str, **storage_options: object) -> LocalArtifactStore | FsspecArtifactStore:
    """A local path or file:// URL gives the local store; any other URL goes through fsspec."""
    if "://" not in url:
        return LocalArtifactStore(url)
    if url.startswith("file://"):
        return LocalArtifactStore(url[len("file://"):])
    return FsspecArtifactStore(url, **storage_options)
