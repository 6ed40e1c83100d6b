"""Bounds on what a request's head may carry, shared by the API server and the inference server.

The HTTP parser under uvicorn (httptools) sets no bound on header size, so a client could make every
request carry megabytes of headers through authentication and logging; both servers answer 431 instead.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024


def oversized_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why these headers are refused, or None when they are within the bounds."""
    count = size = 0
    for name, value in headers:
        count += 1
        size += len(name) + len(value)
    if count > MAX_HEADERS or size > MAX_HEADER_BYTES:
        return (f"request headers are larger than the limit ({MAX_HEADERS} headers, {MAX_HEADER_BYTES // 1024} "
                f"KiB); got {count} headers, {size} bytes")
    return None
