"""Content-defined chunking: cut points chosen by the bytes themselves, so an edit moves only nearby cuts.

A position is a candidate cut when its byte is the anchor byte (one in 256 of
random data) and a multiplicative hash of the 8 bytes before it has its top
`mask_bits` bits clear. Both tests are vectorized with numpy over blocks of the
(memory-mapped) file, in a thread pool: numpy releases the GIL, so a 1 GiB file
is scanned in a fraction of a second. One sequential pass over the (few)
candidates then applies the size bounds: a cut closer than `min_size` to the
previous one is skipped, and a chunk is cut at `max_size` when no candidate
came. Because candidacy depends only on 9 bytes of local content, inserting or
appending bytes changes the chunks around the edit and the cuts resynchronize
after it: an appended-to file keeps all its earlier chunks but the last.
"""

from __future__ import annotations

import math
import mmap
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import blake3

from arsenale.data.hashing import Chunk

ANCHOR = 0x9D
MULTIPLIER = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: spreads any 8 bytes over the top bits
WINDOW = 8
SCAN_BLOCK = 4 << 20


@dataclass(frozen=True)
class ChunkParams:
    """Chunk size bounds; the average chunk is about `min_size + (avg_size - min_size)`."""

    min_size: int = 256 << 10
    avg_size: int = 1 << 20
    max_size: int = 8 << 20
    threshold: int = 64 << 20  # files at least this large are chunked; smaller ones are one blob

    def __post_init__(self) -> None:
        if not 0 < self.min_size < self.avg_size < self.max_size:
            raise ValueError("chunk sizes must satisfy 0 < min_size < avg_size < max_size")

    @property
    def mask_bits(self) -> int:
        """Hash bits that must be zero, on top of the anchor's 1-in-256, for the mean gap beyond min."""
        gap = self.avg_size - self.min_size
        return max(0, round(math.log2(gap)) - 8)


DEFAULT_PARAMS = ChunkParams()


def _candidates(buf: Any, n: int, bits: int, start: int, stop: int) -> Any:
    """Positions p in [start, stop) whose data[p] is the anchor and whose 8-byte window passes: cut at p+1."""
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=n)
    block = data[start:stop]
    pos = np.flatnonzero(block == ANCHOR)
    if start < WINDOW:
        pos = pos[pos + start >= WINDOW]
    pos += start
    if bits and pos.size:
        words = np.ndarray(shape=(n - WINDOW + 1,), dtype="<u8", buffer=buf, strides=(1,))
        hashed = words[pos - WINDOW] * np.uint64(MULTIPLIER)
        pos = pos[(hashed >> np.uint64(64 - bits)) == 0]
    return pos + 1


class _Bounds:
    """The sequential pass: natural cut candidates in, final cuts (respecting min/max) out."""

    def __init__(self, params: ChunkParams) -> None:
        self.lo, self.hi = params.min_size, params.max_size
        self.last = 0

    def feed(self, natural: list[int]) -> list[int]:
        cuts: list[int] = []
        last, lo, hi = self.last, self.lo, self.hi
        for cut in natural:
            if cut - last < lo:
                continue
            while cut - last > hi:
                last += hi
                cuts.append(last)
            if cut - last >= lo:
                cuts.append(cut)
                last = cut
        self.last = last
        return cuts

    def finish(self, n: int) -> list[int]:
        cuts: list[int] = []
        while n - self.last > self.hi:
            self.last += self.hi
            cuts.append(self.last)
        if self.last < n:
            cuts.append(n)
            self.last = n
        return cuts


def _blocks(n: int) -> list[tuple[int, int]]:
    return [(s, min(s + SCAN_BLOCK, n)) for s in range(0, n, SCAN_BLOCK)] if n > WINDOW else []


def cut_points(buf: Any, params: ChunkParams = DEFAULT_PARAMS) -> list[int]:
    """The end offset of each chunk of `buf` (bytes, mmap, memoryview); the last is `len(buf)`."""
    n = len(buf)
    bounds = _Bounds(params)
    cuts: list[int] = []
    for s, e in _blocks(n):
        cuts += bounds.feed(_candidates(buf, n, params.mask_bits, s, e).tolist())
    return cuts + bounds.finish(n)


def chunk_bytes(data: bytes, params: ChunkParams = DEFAULT_PARAMS) -> list[Chunk]:
    """(size, digest) of each content-defined chunk of `data`."""
    out: list[Chunk] = []
    start = 0
    view = memoryview(data)
    for end in cut_points(data, params):
        out.append((end - start, blake3.blake3(view[start:end]).hexdigest()))
        start = end
    return out


def chunk_file(path: str | os.PathLike[str], params: ChunkParams = DEFAULT_PARAMS,
               *, jobs: int | None = None) -> list[Chunk]:
    """(size, digest) of each content-defined chunk of the file.

    Scanning and hashing share one thread pool and overlap: a chunk is hashed as
    soon as the scan has passed its end, while later blocks are still scanned.
    """
    with open(path, "rb") as f:
        n = os.fstat(f.fileno()).st_size
        if n == 0:
            return []
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    workers = jobs or os.cpu_count() or 2
    bits = params.mask_bits

    def scan(block: tuple[int, int]) -> list[int]:
        return _candidates(mm, n, bits, block[0], block[1]).tolist()  # type: ignore[no-any-return]

    def digest(start: int, end: int) -> str:
        with view[start:end] as part:
            return blake3.blake3(part).hexdigest()

    sizes: list[int] = []
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = deque(_blocks(n))
            scans: deque[Future[list[int]]] = deque()
            hashes: list[Future[str]] = []
            bounds = _Bounds(params)
            prev = 0

            def emit(cuts: list[int]) -> None:
                nonlocal prev
                for cut in cuts:
                    hashes.append(pool.submit(digest, prev, cut))
                    sizes.append(cut - prev)
                    prev = cut

            while pending and len(scans) <= workers:
                scans.append(pool.submit(scan, pending.popleft()))
            while scans:
                natural = scans.popleft().result()
                if pending:
                    scans.append(pool.submit(scan, pending.popleft()))
                emit(bounds.feed(natural))
            emit(bounds.finish(n))
            digests = [h.result() for h in hashes]
    finally:
        view.release()
        try:
            mm.close()
        except BufferError:  # a view still alive somewhere: the mapping closes when it is collected
            pass
    return list(zip(sizes, digests))


def chunk_ranges(chunks: list[Chunk]) -> list[tuple[int, int, str]]:
    """(offset, size, digest) of each chunk in a chunk table."""
    out = []
    offset = 0
    for size, digest in chunks:
        out.append((offset, size, digest))
        offset += size
    return out
