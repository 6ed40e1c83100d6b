"""The OTLP/HTTP trace receiver: `POST /v1/traces`, where OpenTelemetry SDK exporters send spans.

Bodies are `application/x-protobuf` or `application/json` (OTLP's JSON encoding), optionally gzip-encoded;
the answer is an `ExportTraceServiceResponse` in the request's encoding, with `partial_success` counting the
spans that were rejected and why. A body that is not an OTLP request is a 400; a body over the server's JSON
limit, compressed or once decompressed, a 413. As OTLP/HTTP asks, the body of a refused protobuf request is a
`google.rpc.Status` (protobuf), which exporters log; a JSON request gets the server's usual JSON error.
"""

from __future__ import annotations

import zlib

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from arsenale.errors import InvalidInput
from arsenale.llm import otlp
from arsenale.llm.tracing import MAX_BATCH

router = APIRouter(tags=["traces"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid gzip: {exc}", field="body") from None
    if len(out) > limit:
        raise HTTPException(413, f"decompressed body is larger than the {limit} bytes limit")
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def rpc_status(code: int, message: str) -> bytes:
    """A `google.rpc.Status` message: field 1 the gRPC code, field 2 the message (no details)."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


_GRPC_CODES = {400: 3, 413: 8, 415: 3}  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)")
async def export(request: Request) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        return await _export(request, content_type)
    except (InvalidInput, HTTPException) as exc:
        if content_type != PROTOBUF:
            raise
        status = exc.http_status if isinstance(exc, InvalidInput) else exc.status_code
        message = exc.message if isinstance(exc, InvalidInput) else str(exc.detail)
        return Response(rpc_status(_GRPC_CODES.get(status, 3), message), status_code=status, media_type=PROTOBUF)


async def _export(request: Request, content_type: str) -> Response:
    if content_type not in (PROTOBUF, JSON):
        raise HTTPException(415, f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type or 'none'!r}")
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, request.app.state.max_json_bytes)
    elif encoding not in ("", "identity"):
        raise HTTPException(415, f"Content-Encoding must be gzip or identity, got {encoding!r}")
    as_json = content_type == JSON
    spans = otlp.spans_from_json(body) if as_json else otlp.spans_from_protobuf(body)
    traces = request.app.state.client.traces
    rejected, errors = 0, []
    for start in range(0, len(spans), MAX_BATCH):  # an exporter's large batch is stored in several
        result = await run_in_threadpool(traces.ingest, spans[start:start + MAX_BATCH])
        rejected += result.rejected
        errors += result.errors
    message = "; ".join(errors[:100])
    return Response(otlp.response(rejected, message, as_json), media_type=JSON if as_json else PROTOBUF)
