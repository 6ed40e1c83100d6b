"""A workspace in a temporary project folder, with small chunk sizes so chunking shows at kilobyte scale."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from arsenale.data.cache import DataCache
from arsenale.data.chunking import ChunkParams
from arsenale.data.statcache import StatCache
from arsenale.data.workspace import DataWorkspace

SMALL = ChunkParams(min_size=1024, avg_size=4096, max_size=16384, threshold=32 * 1024)


def make_workspace(root: Path, remote: str | None = None, **kwargs: object) -> DataWorkspace:
    home = root / ".arsenale"
    home.mkdir(parents=True, exist_ok=True)
    return DataWorkspace(root, DataCache(home / "cache", kwargs.pop("link_modes", ("reflink", "hardlink", "copy"))),  # type: ignore[arg-type]
                         remote, statcache=StatCache(home / "statcache.db"), params=SMALL, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def ws(project: Path, tmp_path: Path) -> Iterator[DataWorkspace]:
    w = make_workspace(project, str(tmp_path / "remote"))
    yield w
    w.close()


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # never write into a file that may be hard-linked into the cache
        path.write_bytes(data)


def sample_tree() -> dict[str, bytes]:
    return {"a.txt": b"alpha\n", "b.txt": b"beta\n", "sub/c.bin": os.urandom(2000),
            "big.bin": os.urandom(100_000)}
