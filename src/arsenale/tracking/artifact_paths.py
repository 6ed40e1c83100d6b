"""Artifact paths are user input that ends up in file names: keep them inside the run."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from arsenale.errors import InvalidInput, NotFound
from arsenale.store.tables import MAX_PATH


def check_artifact_path(value: Any, field: str = "path", *, allow_root: bool = False) -> str:
    """A normalised relative POSIX path with no `..`, no absolute root, no drive, no NUL."""
    if value is None or value == "":
        if allow_root:
            return ""
        raise InvalidInput(f"{field} must not be empty", field=field)
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if "\x00" in value or "\\" in value:
        raise InvalidInput(f"{field} {value!r} must not contain NUL or backslash characters", field=field)
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        raise InvalidInput(f"{field} {value!r} must be relative to the run, not absolute", field=field)
    parts = value.split("/")
    if any(p == ".." for p in parts):
        raise InvalidInput(f"{field} {value!r} must not contain '..'", field=field)
    norm = posixpath.normpath(value)
    if norm == ".":
        if allow_root:
            return ""
        raise InvalidInput(f"{field} must name a file inside the run", field=field)
    if len(norm) > MAX_PATH:
        raise InvalidInput(f"{field} is {len(norm)} characters long; the limit is {MAX_PATH}", field=field)
    return norm


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def files_to_log(local_path: str | os.PathLike[str], artifact_path: str | None) -> list[tuple[Path, str]]:
    """(local file, checked artifact path) for a file, or for every file of a folder's tree kept under
    the folder's name; every path is checked before anything is uploaded."""
    base = check_artifact_path(artifact_path, "artifact_path", allow_root=True)
    src = Path(local_path)
    if src.is_dir():
        files = [(f, join(base, src.name, f.relative_to(src).as_posix()))
                 for f in sorted(src.rglob("*")) if f.is_file()]
    elif src.is_file():
        files = [(src, join(base, src.name))]
    else:
        raise NotFound(f"no such file or folder: {src}", field="local_path")
    return [(f, check_artifact_path(rel)) for f, rel in files]
