"""Content-defined chunking: round trips and locality of edits, as properties over random content."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from arsenale.data.chunking import ChunkParams, chunk_bytes, chunk_file, cut_points
from arsenale.data.hashing import hash_bytes
from tests.data.conftest import SMALL

SIZES = st.integers(min_value=0, max_value=300_000)


def _data(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), size=SIZES)
def test_chunks_concatenate_back_to_the_data(seed: int, size: int) -> None:
    data = _data(seed, size)
    cuts = cut_points(data, SMALL)
    assert cuts == sorted(set(cuts)) and (cuts[-1] == size if size else cuts == [])
    starts = [0, *cuts[:-1]]
    assert b"".join(data[s:e] for s, e in zip(starts, cuts)) == data
    sizes = [e - s for s, e in zip(starts, cuts)]
    assert all(s <= SMALL.max_size for s in sizes)
    assert all(s >= SMALL.min_size for s in sizes[:-1])
    assert [d for _, d in chunk_bytes(data, SMALL)] == [hash_bytes(data[s:e]) for s, e in zip(starts, cuts)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(50_000, 300_000), where=st.floats(0.05, 0.95),
       inserted=st.binary(min_size=1, max_size=500))
def test_inserting_bytes_changes_only_nearby_chunks(seed: int, size: int, where: float, inserted: bytes) -> None:
    data = _data(seed, size)
    at = int(size * where)
    edited = data[:at] + inserted + data[at:]
    before = {d for _, d in chunk_bytes(data, SMALL)}
    after = chunk_bytes(edited, SMALL)
    new = [s for s, d in after if d not in before]
    assert len(new) <= 3, f"{len(new)} of {len(after)} chunks changed"
    assert sum(new) <= 3 * SMALL.max_size


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(20_000, 200_000), extra=st.integers(1, 50_000))
def test_appending_keeps_every_chunk_but_the_last(seed: int, size: int, extra: int) -> None:
    data = _data(seed, size + extra)
    old = chunk_bytes(data[:size], SMALL)
    new = chunk_bytes(data, SMALL)
    assert new[: len(old) - 1] == old[:-1]


def test_file_and_bytes_agree_and_default_chunks_are_about_a_mebibyte(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _data(7, 6 * 1024 * 1024)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert chunk_file(path, SMALL) == chunk_bytes(data, SMALL)
    chunks = chunk_file(path)
    assert 2 <= len(chunks) <= 8 and sum(s for s, _ in chunks) == len(data)
    assert chunk_file(tmp_path / "f.bin", ChunkParams(), jobs=1) == chunks
    (tmp_path / "empty").write_bytes(b"")
    assert chunk_file(tmp_path / "empty") == []


def test_low_entropy_data_is_cut_at_the_maximum() -> None:
    data = bytes(100_000)
    sizes = [s for s, _ in chunk_bytes(data, SMALL)]
    assert sizes[:-1] == [SMALL.max_size] * (len(sizes) - 1)
