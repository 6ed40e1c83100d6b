"""`PATH.ars`: the small JSON file, committed to git, that names one version of a file or folder.

    {
    "arsenale_data": 1,
    "digest": "<tree digest of the folder, or the file's digest>",
    "files": [
      {"digest": "…", "path": "train/part-0.csv", "size": 4096},
      {"chunks": [[1342177, "…"], …], "digest": "…", "path": "big.bin", "size": 1073741824}
    ],
    "kind": "dir",
    "nfiles": 2,
    "path": "images",
    "size": 1073745920
    }

Keys are sorted and each file sits on its own line, so `git diff` of two
versions shows the files that changed. A file at least as large as the
chunking threshold lists its content-defined chunks; its digest is the digest
of that chunk table. Manifests come from users' repositories, so reading one
validates everything: paths must be relative and stay inside the tracked
folder (no `..`, no absolute paths), digests must be BLAKE3 hex, and the
recorded digest must match the entries.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arsenale.data.hashing import Chunk, chunk_table_digest, is_digest, tree_digest
from arsenale.data.scan import MANIFEST_SUFFIX as SUFFIX
from arsenale.errors import InvalidInput, NotFound

FORMAT = 1
Kind = Literal["file", "dir"]


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path (relative, '/'-separated), size and digest; chunks when large."""

    path: str
    size: int
    digest: str
    chunks: tuple[Chunk, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size, "digest": self.digest}
        if self.chunks is not None:
            out["chunks"] = [[size, digest] for size, digest in self.chunks]
        return out


@dataclass(frozen=True)
class Manifest:
    """One version of a tracked file (`kind="file"`) or folder (`kind="dir"`)."""

    path: str
    kind: Kind
    files: tuple[FileEntry, ...]
    digest: str
    size: int

    @classmethod
    def build(cls, path: str, kind: Kind, files: Iterable[FileEntry]) -> "Manifest":
        entries = tuple(sorted(files, key=lambda e: e.path))
        if kind == "file":
            digest = entries[0].digest
        else:
            digest = tree_digest((e.path, e.size, e.digest) for e in entries)
        return cls(path=path, kind=kind, files=entries, digest=digest, size=sum(e.size for e in entries))

    def base(self, manifest_dir: Path) -> Path:
        """The folder each entry's path is relative to."""
        return manifest_dir / self.path if self.kind == "dir" else manifest_dir

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.files}

    def blob_digests(self) -> set[str]:
        """Digests of the cached blobs this version needs (whole files)."""
        return {e.digest for e in self.files}

    def to_json(self) -> str:
        head = {"arsenale_data": FORMAT, "digest": self.digest, "kind": self.kind,
                "nfiles": len(self.files), "path": self.path, "size": self.size}
        lines = ["{"]
        for key in sorted([*head, "files"]):
            if key == "files":
                rows = [json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) for e in self.files]
                body = ",\n".join(f"  {row}" for row in rows)
                lines.append(f'"files": [\n{body}\n],' if rows else '"files": [],')
            else:
                lines.append(f"{json.dumps(key)}: {json.dumps(head[key], ensure_ascii=False)},")
        lines[-1] = lines[-1].rstrip(",")
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> "Manifest":
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{source} is not valid JSON: {exc}", field="manifest") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "manifest") -> "Manifest":
        def bad(why: str) -> InvalidInput:
            return InvalidInput(f"{source}: {why}", field="manifest")

        if not isinstance(raw, dict) or raw.get("arsenale_data") != FORMAT:
            raise bad(f"not an Arsenale data manifest (format {FORMAT})")
        kind = raw.get("kind")
        if kind not in ("file", "dir"):
            raise bad("kind must be 'file' or 'dir'")
        path = raw.get("path")
        if not isinstance(path, str) or not _is_plain_name(path):
            raise bad(f"path {path!r} must be a plain file or folder name beside the manifest")
        items = raw.get("files")
        if not isinstance(items, list):
            raise bad("files must be a list")
        entries = [_entry(item, bad) for item in items]
        seen = {e.path for e in entries}
        if len(seen) != len(entries):
            raise bad("a file is listed twice")
        for e in entries:
            cut = e.path.find("/")
            while cut != -1:
                if e.path[:cut] in seen:
                    raise bad(f"file {e.path!r} lies under another listed file")
                cut = e.path.find("/", cut + 1)
        if kind == "file" and (len(entries) != 1 or entries[0].path != path):
            raise bad("a file manifest lists exactly its one file, under its own name")
        manifest = cls.build(path, kind, entries)
        if raw.get("digest") != manifest.digest:
            raise bad("the recorded digest does not match the files listed (edited by hand?)")
        return manifest

    def write(self, manifest_path: Path) -> None:
        """Write atomically: a reader sees the old manifest or the new one."""
        tmp = manifest_path.with_name(f".{manifest_path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            tmp.write_text(self.to_json(), encoding="utf-8")
            os.replace(tmp, manifest_path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def read(cls, manifest_path: Path) -> "Manifest":
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no manifest {manifest_path}", field="manifest") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read manifest {manifest_path}: {exc}", field="manifest") from None
        return cls.from_json(text, str(manifest_path))


def manifest_path_for(target: Path) -> Path:
    return target.with_name(target.name + SUFFIX)


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def is_safe_relative(path: str) -> bool:
    """A '/'-separated relative path that cannot leave its base folder."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _entry(item: Any, bad: Any) -> FileEntry:
    if not isinstance(item, dict):
        raise bad("each file must be an object")
    path, size, digest, chunks = item.get("path"), item.get("size"), item.get("digest"), item.get("chunks")
    if not isinstance(path, str) or not is_safe_relative(path):
        raise bad(f"file path {path!r} is not a relative path inside the tracked folder")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad(f"file {path!r}: size must be a non-negative integer")
    if not is_digest(digest):
        raise bad(f"file {path!r}: digest must be a BLAKE3 hex digest")
    table: tuple[Chunk, ...] | None = None
    if chunks is not None:
        if not isinstance(chunks, list) or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], int) and not isinstance(c[0], bool)
                and c[0] > 0 and is_digest(c[1]) for c in chunks):
            raise bad(f"file {path!r}: chunks must be [size, digest] pairs")
        table = tuple((int(c[0]), str(c[1])) for c in chunks)
        if sum(s for s, _ in table) != size or chunk_table_digest(table) != digest:
            raise bad(f"file {path!r}: chunks do not add up to its size and digest")
    return FileEntry(path=path, size=size, digest=str(digest), chunks=table)
