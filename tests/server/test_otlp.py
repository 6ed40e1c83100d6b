"""The OTLP/HTTP receiver at /v1/traces: the real OpenTelemetry SDK exporting to a live server, raw JSON bodies,
gzip, and bodies that are not OTLP."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.conftest import LiveServer

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Client]]:
    folder: Path = tmp_path_factory.mktemp("otlp")
    local = Client(f"sqlite:///{folder / 'server.db'}", artifacts=str(folder / "artifacts"))
    local.traces.set_price("gpt-otel", 3.0, 15.0)
    with LiveServer(create_app(local, max_json_bytes=LIMIT)) as server:
        yield server, local


def _provider(url: str, compression: Any = None) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression or Compression.NoCompression)
    provider = TracerProvider(resource=Resource.create({"service.name": "rag-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("gzipped", [False, True])
def test_real_opentelemetry_sdk_exports_spans(live: tuple[LiveServer, Client], gzipped: bool) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.trace import SpanKind, Status, StatusCode

    server, local = live
    provider = _provider(server.url, Compression.Gzip if gzipped else None)
    otel = provider.get_tracer("rag")
    with otel.start_as_current_span("answer", attributes={"session.id": "otel-session"}) as root:
        with otel.start_as_current_span("retrieval") as r:
            r.add_event("hits", {"n": 4})
        with otel.start_as_current_span("chat gpt-otel", kind=SpanKind.CLIENT) as gen:
            gen.set_attributes({"gen_ai.request.model": "gpt-otel", "gen_ai.usage.input_tokens": 2000,
                                "gen_ai.usage.output_tokens": 100, "long": "z" * 40_000})
            gen.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    got = local.traces.get(trace_id)
    assert [s.name for s in got.spans] == ["answer", "retrieval", "chat gpt-otel"]
    assert (got.name, got.session, got.status, got.span_count) == ("answer", "otel-session", "ERROR", 3)
    by_name = {s.name: s for s in got.spans}
    gen_span = by_name["chat gpt-otel"]
    assert gen_span.parent_span_id == format(root.get_span_context().span_id, "016x")
    assert (gen_span.kind, gen_span.status, gen_span.status_message) == ("client", "ERROR", "rate limited")
    assert gen_span.cost == pytest.approx((2000 * 3 + 100 * 15) / 1e6)
    assert gen_span.attributes["service.name"] == "rag-app"
    assert gen_span.attributes["otel.scope.name"] == "rag"
    assert gen_span.attributes["long"].endswith("…[truncated 23616 chars]")
    assert by_name["retrieval"].events[0].attributes == {"n": 4}


def _json_body(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": "json-app"}}]},
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}]}]}


def test_otlp_json_body_with_hex_ids_and_partial_success(live: tuple[LiveServer, Client]) -> None:
    server, local = live
    trace_id, root, child = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    spans: list[dict[str, Any]] = [
        {"traceId": trace_id, "spanId": child, "parentSpanId": root, "name": "llm", "kind": 3,
         "startTimeUnixNano": "1700000000000000100", "endTimeUnixNano": "1700000000000000900",
         "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                        {"key": "temperature", "value": {"doubleValue": 0.2}},
                        {"key": "stop", "value": {"arrayValue": {"values": [{"stringValue": "\n"}]}}}],
         "events": [{"timeUnixNano": "1700000000000000500", "name": "token"}],
         "status": {"code": 2, "message": "boom"}},
        {"traceId": trace_id, "spanId": root, "name": "root", "kind": 1,
         "startTimeUnixNano": 1700000000000000000, "endTimeUnixNano": 1700000000000001000},
        {"traceId": "not-an-id", "spanId": root, "name": "bad", "startTimeUnixNano": "1"},
    ]
    body = json.dumps(_json_body(trace_id, spans)).encode()
    r = httpx.post(f"{server.url}/v1/traces", content=gzip.compress(body),
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "trace_id must be 32 hex digits" in r.json()["partialSuccess"]["errorMessage"]
    got = local.traces.get(trace_id)
    assert [(s.name, s.parent_span_id) for s in got.spans] == [("root", None), ("llm", root)]
    llm = got.spans[1]
    assert (llm.kind, llm.status, llm.status_message, llm.input_tokens) == ("client", "ERROR", "boom", 12)
    assert llm.attributes["temperature"] == 0.2 and llm.attributes["stop"] == ["\n"]
    assert llm.events[0].name == "token" and llm.events[0].time_ns == 1700000000000000500
    assert (got.start_ns, got.end_ns) == (1700000000000000000, 1700000000000001000)


def test_an_export_over_the_ingest_batch_is_stored_in_several(live: tuple[LiveServer, Client],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter's batch larger than one ingest call takes is split, not refused whole."""
    from arsenale.llm import tracing
    from arsenale.server.routers import otlp as otlp_routes

    monkeypatch.setattr(tracing, "MAX_BATCH", 3)  # what one ingest call takes (the server is in this process)
    monkeypatch.setattr(otlp_routes, "MAX_BATCH", 3)
    server, local = live
    trace_id = os.urandom(16).hex()
    spans: list[dict[str, Any]] = [
        {"traceId": trace_id, "spanId": os.urandom(8).hex(), "name": f"s{i}", "startTimeUnixNano": str(i + 1),
         "endTimeUnixNano": str(i + 2)} for i in range(7)]
    spans.append({"traceId": "bad", "spanId": os.urandom(8).hex(), "name": "bad", "startTimeUnixNano": "1"})
    r = httpx.post(f"{server.url}/v1/traces", json=_json_body(trace_id, spans))
    assert r.status_code == 200, r.text
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert len(local.traces.get(trace_id).spans) == 7


def test_protobuf_partial_success(live: tuple[LiveServer, Client]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    server, local = live
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="ok", start_time_unix_nano=5,
                     end_time_unix_nano=9)
    spans.add(trace_id=os.urandom(16), span_id=b"\x01\x02", name="short id", start_time_unix_nano=5)
    r = httpx.post(f"{server.url}/v1/traces", content=request.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_spans == 1
    assert "span_id" in answer.partial_success.error_message
    assert local.traces.get(good.trace_id.hex()).spans[0].name == "ok"


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"\xff\xff\xff garbage", {"Content-Type": "application/x-protobuf"}, 400, "not an OTLP"),
    (b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400, "body must be an object"),
    (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "Content-Type must be"),
    (b"x" * (LIMIT + 1), {"Content-Type": "application/x-protobuf"}, 413, "larger than"),
    (gzip.compress(b" " * (LIMIT + 10)), {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 413,
     "larger than"),
])
def test_bad_bodies_get_clear_errors_and_store_nothing(live: tuple[LiveServer, Client], body: bytes,
                                                       headers: dict[str, str], status: int, message: str) -> None:
    server, local = live
    before = local.traces.search(limit=1000).traces
    r = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers)
    assert r.status_code == status, r.text
    if r.headers["content-type"] == "application/x-protobuf":  # what OTLP exporters read and log
        from google.rpc.status_pb2 import Status

        answer = Status.FromString(r.content)
        assert message in answer.message and answer.code == 3  # INVALID_ARGUMENT
    else:
        assert message in r.json()["message"]
    assert local.traces.search(limit=1000).traces == before


def test_empty_export_is_fine(live: tuple[LiveServer, Client]) -> None:
    server, _ = live
    r = httpx.post(f"{server.url}/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and r.content == b""
    r = httpx.post(f"{server.url}/v1/traces", json={"resourceSpans": []})
    assert r.status_code == 200 and r.json() == {}


def test_rest_routes_refuse_bad_input_with_the_field(live: tuple[LiveServer, Client]) -> None:
    server, local = live
    before = local.traces.search(limit=1000).traces
    for method, path, body, field in (
            ("POST", "/api/v1/traces/spans", {"spans": "x"}, "spans"),
            ("POST", "/api/v1/traces/spans", [], "spans"),
            ("PUT", "/api/v1/traces/prices/m", {"input_per_million": 1}, "output_per_million"),
            ("PUT", "/api/v1/traces/prices/m", {"input_per_million": -1, "output_per_million": 1},
             "input_per_million"),
            ("POST", f"/api/v1/traces/{'a' * 32}/scores", {"name": "thumbs", "value": 1, "extra": 1}, "extra")):
        r = httpx.request(method, f"{server.url}{path}", json=body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["field"] == field, r.text
    r = httpx.get(f"{server.url}/api/v1/traces", params={"attribute": "novalue"})
    assert r.status_code == 400 and r.json()["field"] == "attribute"
    assert httpx.get(f"{server.url}/api/v1/traces/{'0' * 32}").status_code == 404
    assert local.traces.search(limit=1000).traces == before
    assert [p.model for p in local.traces.prices()] == ["gpt-otel"]
