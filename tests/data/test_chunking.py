"""Content-defined chunking: round trips and locality of edits, as properties over random content."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arsenale.data import chunking
from arsenale.data.chunking import (
    ANCHOR,
    MULTIPLIER,
    WINDOW,
    ChunkParams,
    chunk_bytes,
    chunk_file,
    cut_points,
)
from arsenale.data.hashing import chunk_table_digest, hash_bytes
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


def _reference_cuts(data: bytes, params: ChunkParams) -> list[int]:
    """The chunking rule as the module docstring states it, one byte at a time."""
    bits, lo, hi = params.mask_bits, params.min_size, params.max_size
    natural = [p + 1 for p in range(WINDOW, len(data)) if data[p] == ANCHOR and (
        bits == 0 or (int.from_bytes(data[p - WINDOW:p], "little") * MULTIPLIER % 2**64) >> (64 - bits) == 0)]
    cuts: list[int] = []
    last = 0
    for cut in natural:
        if cut - last < lo:
            continue
        while cut - last > hi:
            last += hi
            cuts.append(last)
        if cut - last >= lo:
            cuts.append(cut)
            last = cut
    while len(data) - last > hi:
        last += hi
        cuts.append(last)
    return cuts + ([len(data)] if last < len(data) else [])


TINY = ChunkParams(min_size=16, avg_size=48, max_size=400)  # mask_bits 5: many candidates, many cuts


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 6000), density=st.sampled_from([0.0, 0.02, 0.3]),
       block=st.sampled_from([7, 64, 100, 1000, 4 << 20]), params=st.sampled_from([TINY, SMALL]))
def test_cut_points_follow_the_rule_byte_for_byte(seed: int, size: int, density: float, block: int,
                                                  params: ChunkParams) -> None:
    """The vectorized scan (anchors found as bits of 64-bit words, in blocks) against the plain rule:
    many anchors per word, anchors at block and word edges, blocks shorter than the window."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    for i in range(size):
        if rng.random() < density:
            data[i] = ANCHOR
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "SCAN_BLOCK", block)
        assert cut_points(bytes(data), params) == _reference_cuts(bytes(data), params)


def test_chunk_boundaries_are_pinned() -> None:
    """Changing where chunks are cut changes the digest of every large file already versioned: any change to
    the chunking rule must fail here (and then needs a new format, not an edit of these values)."""
    data = random.Random(11).randbytes(24 << 20)
    chunks = chunk_bytes(data)
    assert len(chunks) == 23 and cut_points(data)[:3] == [1896652, 3651466, 5640428]
    assert chunk_table_digest(chunks) == "b9ea02ddd1b41237c282b3d240b31731edb4a4d2d53ca21192d0099c08fb7d19"
    small = chunk_bytes(random.Random(12).randbytes(300_000), SMALL)
    assert chunk_table_digest(small) == "fe80d2adf22cdbe59442cc3c013b709bd042dc8698aadc17e72f017ffed90f8f"
