"""A file entering the cache before its digest is known: a copy made by a background thread, readable
front to back while it grows.

`data add` of a large file copies it into the cache and chunks it in one go: the
chunker reads the copy right behind the copier (`chunking.chunk_file(ready=...)`),
so on a machine with a core to spare the copy adds little wall time, and the
digest names exactly the bytes the cache holds, even if the working file is
edited while it is being added.

The destination is created at its final size at once, so it can be memory-mapped
before it is filled. The bytes are moved by `copy_file_range(2)` (inside the
kernel, page cache to page cache), `STEP` bytes at a time; where the system or
the filesystems refuse it, by `pread`/`pwrite`. Nothing is fsynced: like every
cache write, the blob is made under a temporary name and renamed once whole.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

from arsenale.errors import Conflict

STEP = 8 << 20
_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF)


class BackgroundCopy:
    """Copy the first `size` bytes of `src` to `dst` (a new file) in a thread; `wait(offset)` for a prefix.

    A source shorter than `size` (it shrank since it was measured) stops the copy
    with `Conflict`, which every waiter then raises.
    """

    def __init__(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], size: int) -> None:
        self.src, self.dst, self.size = os.fspath(src), os.fspath(dst), size
        self._done = 0
        self._error: BaseException | None = None
        self._stop = False
        self._copy_range = hasattr(os, "copy_file_range")
        self._cond = threading.Condition()
        self._fd = os.open(self.dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(self._fd, size)
        except BaseException:
            os.close(self._fd)
            os.unlink(self.dst)
            raise
        self._thread = threading.Thread(target=self._run, name="arsenale-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with open(self.src, "rb") as f:
                offset = 0
                while offset < self.size and not self._stop:
                    n = self._copy(f.fileno(), offset, min(STEP, self.size - offset))
                    if n == 0:
                        raise Conflict(f"{self.src} shrank while it was being added: add it again", field="path")
                    offset += n
                    with self._cond:
                        self._done = offset
                        self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiters, who raise it
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _copy(self, src: int, offset: int, count: int) -> int:
        if self._copy_range:
            try:
                return os.copy_file_range(src, self._fd, count, offset, offset)
            except OSError as exc:
                if exc.errno not in _NO_COPY_RANGE:
                    raise
                self._copy_range = False
        data = os.pread(src, count, offset)
        view, written = memoryview(data), 0
        while written < len(data):
            written += os.pwrite(self._fd, view[written:], offset + written)
        return len(data)

    @property
    def copied(self) -> int:
        """Bytes in place so far."""
        return self._done

    def wait(self, offset: int) -> None:
        """Return once the first `offset` bytes are in place; raise what stopped the copy before that."""
        with self._cond:
            while self._done < min(offset, self.size) and self._error is None and self._thread.is_alive():
                self._cond.wait(0.5)
            if self._done >= min(offset, self.size):
                return
            if self._error is not None:
                raise self._error
        raise Conflict(f"the copy of {self.src} was stopped", field="path")

    def finish(self) -> None:
        """Wait for the whole copy, then release the destination."""
        self.wait(self.size)
        self.close()

    def close(self) -> None:
        """Stop the copy if it is still running (the destination is left for the caller to remove)."""
        self._stop = True
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Staged:
    """A file entering a content-addressed store before its digest is known: `path` holds its bytes, or is
    receiving them from `copy`.

    `ready` (None when every byte is in place already) waits for a prefix of the
    copy; `commit` hands the whole file to `file(path, digest)`, which renames
    it to the blob's name (True) or removes it, the blob being there (False);
    `discard` stops the copy and removes the file, unless it was committed.
    """

    def __init__(self, path: Path, mode: str, file: Callable[[Path, str], bool],
                 copy: BackgroundCopy | None = None) -> None:
        self.path, self.mode = path, mode
        self._file, self._copy = file, copy
        self.ready = copy.wait if copy is not None else None
        self._open = True

    def commit(self, digest: str) -> str | None:
        """File the bytes as blob `digest` (they must be its bytes): the link mode, None if it was stored."""
        if self._copy is not None:
            self._copy.finish()
        self._open = False
        return self.mode if self._file(self.path, digest) else None

    def discard(self) -> None:
        """Stop the copy and remove the file, unless committed."""
        if not self._open:
            return
        self._open = False
        if self._copy is not None:
            self._copy.close()
        self.path.unlink(missing_ok=True)
