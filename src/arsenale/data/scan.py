"""Walking a tracked tree, and fingerprinting what `stat` says of it.

Kept free of anything heavier than `os` and `blake3`, because `arsenale data status` on an unchanged
tree answers from these alone (see `cli/datawork.quick_status`): the walk, one fingerprint of every
file's (path, size, mtime, inode), and one lookup of the fingerprint the last clean status recorded.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

import blake3

MANIFEST_SUFFIX = ".ars"
SKIP_NAMES = frozenset({".arsenale", ".git", ".hg", ".svn", ".dvc", "__pycache__"})
TMP_SUFFIXES = (".ars-tmp", ".tmp")


def walk_files(target: str) -> list[tuple[str, str, os.stat_result]]:
    """(path relative to `target`, absolute path, stat) of every regular file under a folder, or of a file."""
    if not os.path.isdir(target):
        return [(os.path.basename(target), target, os.stat(target))]
    out: list[tuple[str, str, os.stat_result]] = []
    _visit(target, "", lambda rel, e: out.append((rel, e.path, e.stat())))
    return out


def _visit(folder: str, prefix: str, emit: Callable[[str, os.DirEntry[str]], object]) -> None:
    """`emit(relative path, entry)` for every regular file below `folder` (symbolic links to files followed;
    sockets, fifos, broken links, skipped names and temporary files left out)."""
    with os.scandir(folder) as it:
        for e in it:
            if e.name in SKIP_NAMES or e.name.endswith(TMP_SUFFIXES):
                continue
            if e.is_dir(follow_symlinks=False):
                _visit(e.path, f"{prefix}{e.name}/", emit)
            elif e.is_file():
                emit(prefix + e.name, e)


def find_manifests(root: str) -> list[str]:
    """Every manifest under `root`; hidden folders, skipped names and tracked folders are not entered."""
    found: list[str] = []

    def walk(folder: str) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        names = {e.name for e in entries}
        for e in entries:
            if e.name.endswith(MANIFEST_SUFFIX) and e.is_file():
                found.append(e.path)
            elif (e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
                  and e.name not in SKIP_NAMES and e.name + MANIFEST_SUFFIX not in names):
                walk(e.path)

    walk(root)
    return sorted(found)


def tree_signature(files: list[tuple[str, str, os.stat_result]]) -> str:
    """A digest of every file's (relative path, size, mtime, inode): equal signatures, same stat information."""
    return _signature([_stat_line(rel, st) for rel, _, st in files])


def signature_of(target: str) -> str:
    """`tree_signature(walk_files(target))`, in one pass: the whole cost of an unchanged `data status`."""
    if not os.path.isdir(target):
        return _signature([_stat_line(os.path.basename(target), os.stat(target))])
    lines: list[str] = []
    _visit(target, "", lambda rel, e: lines.append(_stat_line(rel, e.stat())))
    return _signature(lines)


def _stat_line(rel: str, st: os.stat_result) -> str:
    return f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"


def _signature(lines: list[str]) -> str:
    lines.sort()
    return blake3.blake3("".join(lines).encode()).hexdigest()


def file_digest(path: str) -> str:
    """BLAKE3 of a small file's bytes (a manifest), read whole."""
    with open(path, "rb") as f:
        return blake3.blake3(f.read()).hexdigest()


# The last clean status of each manifest lives in the stat cache's database (table `clean`, created there).


def record_clean(db: sqlite3.Connection, manifest: str, manifest_digest: str, target: str, signature: str) -> None:
    """Remember that `target`, with this stat signature, matched the manifest with these bytes."""
    db.execute("INSERT OR REPLACE INTO clean (manifest, manifest_digest, target, tree_signature) VALUES (?, ?, ?, ?)",
               (manifest, manifest_digest, target, signature))


def clean_as_of(db: sqlite3.Connection, manifest: str) -> tuple[str, str, str] | None:
    """(manifest digest, target, tree signature) of the manifest's last clean status, if any."""
    row = db.execute("SELECT manifest_digest, target, tree_signature FROM clean WHERE manifest = ?",
                     (manifest,)).fetchone()
    return (row[0], row[1], row[2]) if row else None


def still_clean(db: sqlite3.Connection, manifest: str) -> str | None:
    """The tracked target if the manifest's bytes and its target's stat signature are those of its last clean
    status, so it is provably unchanged without reading a file; else None."""
    known = clean_as_of(db, manifest)
    if known is None:
        return None
    manifest_digest, target, signature = known
    if file_digest(manifest) != manifest_digest or signature_of(target) != signature:
        return None
    return target
