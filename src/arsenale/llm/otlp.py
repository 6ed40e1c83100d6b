"""OTLP/HTTP trace export requests read into spans for `TraceService.ingest`, and the answers to send back.

    spans_from_protobuf(body)   an `ExportTraceServiceRequest` in the binary protobuf encoding
    spans_from_json(body)       the same in OTLP's JSON encoding (ids as hex strings, lowerCamelCase keys;
                                snake_case accepted too; 64-bit integers as numbers or strings)
    response(rejected, message, as_json)   an `ExportTraceServiceResponse`, with partial_success if some spans
                                were rejected

A resource's attributes (`service.name`, …) are added to each of its spans where the span does not set the
same key; the instrumentation scope's name is `otel.scope.name`. Anything that is not an OTLP request raises
`InvalidInput` (400).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from arsenale.errors import InvalidInput

__all__ = ["response", "spans_from_json", "spans_from_protobuf"]

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


# ---- protobuf ---------------------------------------------------------------------------------------------


def _any_pb(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_pb(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_pb(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def _attrs_pb(kvs: Any) -> dict[str, Any]:
    return {kv.key: _any_pb(kv.value) for kv in kvs}


def spans_from_protobuf(body: bytes) -> list[dict[str, Any]]:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"body is not an OTLP ExportTraceServiceRequest: {exc}", field="body") from None
    out: list[dict[str, Any]] = []
    for rs in request.resource_spans:
        resource = _attrs_pb(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"otel.scope.name": ss.scope.name} if ss.scope.name else {}
            for sp in ss.spans:
                attributes = {**resource, **scope, **_attrs_pb(sp.attributes)}
                out.append({
                    "trace_id": sp.trace_id.hex(), "span_id": sp.span_id.hex(),
                    "parent_span_id": sp.parent_span_id.hex() or None, "name": sp.name,
                    "kind": _KINDS.get(sp.kind, "unspecified"), "start_ns": sp.start_time_unix_nano,
                    "end_ns": sp.end_time_unix_nano or None, "status": _STATUS.get(sp.status.code, "UNSET"),
                    "status_message": sp.status.message or None, "attributes": attributes,
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _attrs_pb(e.attributes)}
                               for e in sp.events],
                })
    return out


# ---- JSON -------------------------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, default: Any = None) -> Any:
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake, default)


def _list(obj: Mapping[str, Any], camel: str, where: str) -> list[Any]:
    value = _get(obj, camel, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where}.{camel} must be a list", field=f"{where}.{camel}")
    return value


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where} must be an object", field=where)
    return value


def _any_json(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    for key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])
            except (TypeError, ValueError):
                return value[key]
    if "arrayValue" in value or "array_value" in value:
        arr = _get(value, "arrayValue") or {}
        return [_any_json(v) for v in (arr.get("values") or [])] if isinstance(arr, Mapping) else None
    if "kvlistValue" in value or "kvlist_value" in value:
        kv = _get(value, "kvlistValue") or {}
        return _attrs_json(kv.get("values") or [], "kvlistValue") if isinstance(kv, Mapping) else None
    if "bytesValue" in value or "bytes_value" in value:
        return _get(value, "bytesValue")
    return None


def _attrs_json(kvs: Any, where: str) -> dict[str, Any]:
    if not isinstance(kvs, list):
        raise InvalidInput(f"{where} must be a list of key/value objects", field=where)
    out = {}
    for kv in kvs:
        if isinstance(kv, Mapping) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_json(kv.get("value"))
    return out


def _id(value: Any) -> str:
    """OTLP JSON ids are hex strings; base64 (protobuf's default JSON for bytes) is accepted as a fallback."""
    if not value:
        return ""
    text = str(value)
    if all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text  # refused with its field's message by the service


def _enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, str) and not value.isdigit():
        name = value.upper().removeprefix(prefix)
        return name.lower() if prefix == "SPAN_KIND_" else name
    try:
        return names.get(int(value or 0), names[0])
    except (TypeError, ValueError):
        return names[0]


def spans_from_json(body: bytes) -> list[dict[str, Any]]:
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}", field="body") from None
    request = _obj(request, "body")
    out: list[dict[str, Any]] = []
    for i, rs in enumerate(_list(request, "resourceSpans", "body")):
        rs = _obj(rs, f"resourceSpans[{i}]")
        resource = _attrs_json(_obj(_get(rs, "resource", {}) or {}, "resource").get("attributes") or [],
                               "resource.attributes")
        for j, ss in enumerate(_list(rs, "scopeSpans", f"resourceSpans[{i}]")):
            ss = _obj(ss, f"resourceSpans[{i}].scopeSpans[{j}]")
            scope_name = (_get(ss, "scope", {}) or {}).get("name") if isinstance(_get(ss, "scope"), Mapping) else None
            scope = {"otel.scope.name": scope_name} if scope_name else {}
            for k, sp in enumerate(_list(ss, "spans", f"resourceSpans[{i}].scopeSpans[{j}]")):
                if not isinstance(sp, Mapping):
                    out.append({"name": None})  # rejected by the service with its reason, counted
                    continue
                status = _get(sp, "status", {}) or {}
                status = status if isinstance(status, Mapping) else {}
                out.append({
                    "trace_id": _id(_get(sp, "traceId")), "span_id": _id(_get(sp, "spanId")),
                    "parent_span_id": _id(_get(sp, "parentSpanId")) or None, "name": sp.get("name"),
                    "kind": _enum(sp.get("kind"), _KINDS, "SPAN_KIND_"),
                    "start_ns": _get(sp, "startTimeUnixNano"), "end_ns": _get(sp, "endTimeUnixNano") or None,
                    "status": _enum(status.get("code"), _STATUS, "STATUS_CODE_"),
                    "status_message": status.get("message") or None,
                    "attributes": {**resource, **scope, **_attrs_json(sp.get("attributes") or [], "attributes")},
                    "events": [{"name": e.get("name"), "time_ns": _get(e, "timeUnixNano") or 0,
                                "attributes": _attrs_json(e.get("attributes") or [], "events.attributes")}
                               for e in (sp.get("events") or []) if isinstance(e, Mapping)],
                })
    return out


# ---- the answer -------------------------------------------------------------------------------------------


def response(rejected: int, message: str, as_json: bool) -> bytes:
    if as_json:
        body: dict[str, Any] = {}
        if rejected:
            body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        return json.dumps(body).encode()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    return bytes(answer.SerializeToString())
