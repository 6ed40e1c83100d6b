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
from collections.abc import Callable
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
    """Positions p in [start, stop) whose data[p] is the anchor and whose 8-byte window passes: cut at p+1.

    The anchors (one byte in 256) are found as bits: `np.flatnonzero` over one
    flag per byte costs twice the comparison itself, over one 64-bit word per
    64 bytes it costs next to nothing, and taking the set bits out of the few
    words that have any is cheap. The windows of those anchors are then hashed.
    """
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8, count=n)
    hits = data[start:stop] == ANCHOR
    packed = np.packbits(hits, bitorder="little")  # bit i of byte k: position 8k + i of the block
    whole = packed.size // 8 * 8
    words = packed[:whole].view("<u8")  # bit b of word k: position 64k + b
    at = np.flatnonzero(words != 0)
    vals = words[at]
    at = at * 64 + start
    found = [np.flatnonzero(hits[whole * 8:]) + (start + whole * 8)]
    while vals.size:
        lowest = vals & (~vals + np.uint64(1))  # the lowest set bit, whose exponent is its index
        found.append(at + (np.frexp(lowest.astype(np.float64))[1] - 1))
        vals &= vals - np.uint64(1)
        left = np.flatnonzero(vals)
        vals, at = vals[left], at[left]
    pos = np.concatenate(found)
    if start < WINDOW:
        pos = pos[pos >= WINDOW]
    if bits and pos.size:
        hashed = _words_at(buf, n, pos - WINDOW) * np.uint64(MULTIPLIER)
        pos = pos[(hashed >> np.uint64(64 - bits)) == 0]
    pos.sort()
    return pos + 1


def _words_at(buf: Any, n: int, starts: Any) -> Any:
    """The little-endian 64-bit words of `buf` at byte offsets `starts`, each from two aligned words and
    shifts: `take` from aligned words costs half of indexing a byte-strided view of unaligned ones."""
    import numpy as np

    aligned = np.frombuffer(buf, dtype="<u8", count=n // 8)
    k = starts >> 3
    shift = (starts & 7).astype(np.uint64) << np.uint64(3)  # a shift by 64 gives 0 in numpy
    words = (aligned.take(k, mode="clip") >> shift) | (aligned.take(k + 1, mode="clip") << (np.uint64(64) - shift))
    tail = starts + WINDOW > aligned.size * 8  # reaching into the last, partial word
    if tail.any():
        strided = np.ndarray(shape=(n - WINDOW + 1,), dtype="<u8", buffer=buf, strides=(1,))
        words[tail] = strided[starts[tail]]
    return words


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
               *, jobs: int | None = None, ready: Callable[[int], object] | None = None) -> list[Chunk]:
    """(size, digest) of each content-defined chunk of the file.

    Scanning and hashing share one thread pool and overlap: a chunk is hashed as
    soon as the scan has passed its end, while later blocks are still scanned.

    `ready`, for a file that is still being written front to back at its final
    size (the cache's copy of a file being added, see `DataCache.stage`), is
    called with an offset and returns once the bytes before it are in place; a
    block is scanned, and so a chunk hashed, only after that.
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
        if ready is not None:
            ready(block[1])
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
