"""BLAKE3 content digests: whole files, many small files in parallel, chunk tables.

A file smaller than the chunking threshold is identified by `blake3(content)`,
the same digest the artifact store uses. A larger file is split into
content-defined chunks (see `chunking`), and its digest is the BLAKE3 of its
chunk table, so it is hashed once, chunk by chunk, never twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import blake3

DIGEST_HEX = 64
MMAP_FROM = 1 << 20  # below this a plain read is cheaper than mmap + threads
CHUNK_TABLE_PREFIX = b"arsenale-chunks-v1\n"
TREE_PREFIX = b"arsenale-tree-v1\n"

Chunk = tuple[int, str]  # (size, digest)


_HEX64 = re.compile(r"[0-9a-f]{64}")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def hash_bytes(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def hash_small_file(path: str | os.PathLike[str], size: int | None = None) -> str:
    """One file read whole (or memory-mapped with BLAKE3's threads when it is large)."""
    if size is None:
        size = os.path.getsize(path)
    if size >= MMAP_FROM:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update_mmap(os.fspath(path))
        return h.hexdigest()
    with open(path, "rb") as f:
        return blake3.blake3(f.read()).hexdigest()


def chunk_table_digest(chunks: Sequence[Chunk]) -> str:
    """The digest of a chunked file: BLAKE3 over its ordered chunk table."""
    h = blake3.blake3(CHUNK_TABLE_PREFIX)
    h.update("".join(f"{size} {digest}\n" for size, digest in chunks).encode())
    return h.hexdigest()


def tree_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """The digest of a folder: BLAKE3 over its (path, size, digest) entries sorted by path."""
    h = blake3.blake3(TREE_PREFIX)
    h.update("".join(f"{digest} {size} {path}\n" for path, size, digest in sorted(entries)).encode())
    return h.hexdigest()


def default_jobs() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def parallel_map(fn: Callable[..., object], items: Sequence[object], jobs: int | None = None) -> list[object]:
    """`fn` over `items` in a thread pool (BLAKE3 and file reads release the GIL); in order."""
    if len(items) < 32 or (jobs is not None and jobs <= 1):
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        return list(pool.map(fn, items, chunksize=64))
