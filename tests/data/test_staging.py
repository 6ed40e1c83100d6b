"""The background copy a large file enters the cache by, and the chunker reading right behind it."""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import pytest

from arsenale.data import chunking, staging
from arsenale.data.chunking import chunk_bytes, chunk_file
from arsenale.data.staging import BackgroundCopy
from arsenale.errors import Conflict
from tests.data.conftest import SMALL


def _data(size: int, seed: int = 3) -> bytes:
    return random.Random(seed).randbytes(size)


def test_copies_the_first_size_bytes_and_waits_for_a_prefix(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "STEP", 4096)
    data = _data(100_000)
    (tmp_path / "src").write_bytes(data + b"grown after it was measured")
    copy = BackgroundCopy(tmp_path / "src", tmp_path / "dst", len(data))
    assert (tmp_path / "dst").stat().st_size == len(data)  # at its final size at once: it can be mapped
    copy.wait(50_000)
    assert copy.copied >= 50_000
    assert (tmp_path / "dst").read_bytes()[:50_000] == data[:50_000]
    copy.finish()
    assert copy.copied == len(data) and (tmp_path / "dst").read_bytes() == data
    copy.wait(len(data) + 10)  # past the end: nothing more will come, nothing to wait for


def test_copies_without_copy_file_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    monkeypatch.setattr(staging, "STEP", 10_000)
    data = _data(123_457)
    (tmp_path / "src").write_bytes(data)
    copy = BackgroundCopy(tmp_path / "src", tmp_path / "dst", len(data))
    copy.finish()
    assert (tmp_path / "dst").read_bytes() == data


def test_a_source_that_shrank_is_a_conflict_for_every_waiter(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(_data(10_000))
    copy = BackgroundCopy(tmp_path / "src", tmp_path / "dst", 20_000)
    with pytest.raises(Conflict, match="shrank"):
        copy.wait(15_000)
    with pytest.raises(Conflict, match="shrank"):
        copy.finish()
    copy.close()
    copy.wait(5_000)  # the part that was copied is still there


def test_the_destination_must_be_new(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 10)
    (tmp_path / "dst").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        BackgroundCopy(tmp_path / "src", tmp_path / "dst", 10)
    assert (tmp_path / "dst").read_bytes() == b"keep me"


def test_chunker_reads_a_growing_file_only_behind_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block is scanned (and its chunks hashed) only once `ready` vouches for it: here the bytes are
    written only when asked for, so anything read too early would be zeros and cut differently."""
    monkeypatch.setattr(chunking, "SCAN_BLOCK", 64 << 10)
    data = _data(1 << 20)
    path = tmp_path / "growing.bin"
    with open(path, "wb") as f:
        f.truncate(len(data))
    lock = threading.Lock()
    written = 0
    asked: list[int] = []

    def ready(offset: int) -> None:
        nonlocal written
        with lock:
            asked.append(offset)
            if offset > written:
                with open(path, "r+b") as f:
                    f.seek(written)
                    f.write(data[written:offset])
                written = offset

    chunks = chunk_file(path, SMALL, jobs=3, ready=ready)
    assert chunks == chunk_bytes(data, SMALL)
    assert len(asked) == len(data) // (64 << 10)
    assert max(asked) == len(data)


def test_chunker_raises_what_stopped_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(300_000))

    def ready(offset: int) -> None:
        raise Conflict("the copy was stopped")

    with pytest.raises(Conflict):
        chunk_file(path, SMALL, ready=ready)
