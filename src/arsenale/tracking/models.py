"""Tracking's domain objects and their validation: MLflow's vocabulary, pydantic schemas.

The same classes travel over HTTP, so floats are serialised with NaN and
infinities as strings: a diverging loss must survive the trip.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.store.tables import MAX_KEY, MAX_NAME, MAX_PARAM_VALUE, MAX_TAG_VALUE

_KEY_RE = re.compile(r"^[\w\-. /:]+$")


class Schema(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=False)


class RunStatus(str, Enum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class ViewType(str, Enum):
    ACTIVE = "active"
    DELETED = "deleted"
    ALL = "all"


class Experiment(Schema):
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"
    description: str | None = None
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = Field(default_factory=dict)
    project: str = "default"


class RunInfo(Schema):
    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None = None
    parent_run_id: str | None = None
    user_id: str | None = None
    lifecycle_stage: str = "active"


class Metric(Schema):
    key: str
    value: float
    step: int = 0
    timestamp: int = 0


class RunData(Schema):
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict, description="the latest value of each metric")


class Run(Schema):
    info: RunInfo
    data: RunData

    @property
    def run_id(self) -> str:
        return self.info.run_id


class RunPage(Schema):
    runs: list[Run]
    next_page_token: str | None = None


class MetricHistory(Schema):
    """One metric's series. When downsampled, each bucket keeps its first step and
    its min and max values so spikes stay visible; `values` holds the bucket's last point."""

    key: str
    steps: list[int]
    values: list[float]
    timestamps: list[int]
    downsampled: bool = False
    total_points: int = 0
    mins: list[float] | None = None
    maxs: list[float] | None = None


class ArtifactInfo(Schema):
    path: str
    is_dir: bool
    size: int | None = None
    digest: str | None = None


class MetricPoint(NamedTuple):
    """The hot-path form of a metric point: a plain tuple, no per-point validation object."""

    key: str
    value: float
    step: int
    timestamp: int


def now_ms() -> int:
    return int(time.time() * 1000)


def check_name(value: Any, field: str, max_len: int = MAX_NAME) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    if not value.strip():
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > max_len:
        raise InvalidInput(f"{field} is {len(value)} characters long; the limit is {max_len}", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters", field=field)
    return value


def check_key(value: Any, field: str) -> str:
    check_name(value, field, MAX_KEY)
    if not _KEY_RE.match(value) or ".." in value.split("/") or value.startswith("/"):
        raise InvalidInput(
            f"{field} {value!r} may contain only letters, digits, and _ - . / : and spaces", field=field)
    return value


def check_run_id(value: Any, field: str = "run_id") -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{32}", value):
        raise InvalidInput(f"{field} must be a 32-character hex run id, got {value!r}", field=field)
    return value


def check_experiment_id(value: Any, field: str = "experiment_id") -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer id, got {value!r}", field=field)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be an integer id, got {value!r}", field=field) from None
    if out < 0 or out > 2**31 - 1 or str(out) != str(value).strip():
        raise InvalidInput(f"{field} must be a non-negative integer id, got {value!r}", field=field)
    return out


def to_float(value: Any, field: str = "value") -> float:
    """Numbers (and numeric strings such as 'NaN' or 'inf') become floats; NaN and ±inf are kept."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise InvalidInput(f"metric {field} must be a number, got {value!r}", field=field)


_I64 = 2**63 - 1


def to_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__index__"):
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    if isinstance(value, float) and not value.is_integer():
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    out = int(value)
    if abs(out) > 2**63 - 1:
        raise InvalidInput(f"{field} {out} is out of range", field=field)
    return out


def normalize_metrics(metrics: Iterable[Any] | None, default_timestamp: int | None = None) -> list[MetricPoint]:
    """Accept Metric objects, dicts or (key, value[, step[, timestamp]]) tuples; validate them all
    before anything is written, so one bad point rejects the whole batch."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, bytes, Mapping)):
        raise InvalidInput("metrics must be a list of points", field="metrics")
    ts_default = default_timestamp if default_timestamp is not None else now_ms()
    out: list[Any] = []
    seen_keys: set[str] = set()
    append = out.append
    for i, m in enumerate(metrics):
        # Fast path: an already well-typed (key, value, step, timestamp) tuple is kept as it is.
        if type(m) is tuple or type(m) is MetricPoint:
            if len(m) == 4 and type(m[1]) is float and type(m[2]) is int and type(m[3]) is int \
                    and m[0] in seen_keys:
                append(m)
                continue
            n = len(m)
            if n < 2 or n > 4:
                raise InvalidInput(f"metrics[{i}] must be (key, value[, step[, timestamp]])", field="metrics")
            key, value = m[0], m[1]
            step = m[2] if n > 2 else 0
            ts = m[3] if n > 3 else ts_default
        elif isinstance(m, Metric):
            key, value, step, ts = m.key, m.value, m.step, m.timestamp or ts_default
        elif isinstance(m, Mapping):
            if "key" not in m or "value" not in m:
                raise InvalidInput(f"metrics[{i}] needs 'key' and 'value'", field="metrics")
            key, value = m["key"], m["value"]
            step = m.get("step", 0) or 0
            ts = m.get("timestamp") or ts_default
        else:
            raise InvalidInput(f"metrics[{i}] must be a Metric, a mapping or a tuple, got {type(m).__name__}",
                               field="metrics")
        if key not in seen_keys:
            check_key(key, "metrics.key")
            seen_keys.add(key)
        fv = value if type(value) is float else to_float(value, f"metrics[{i}].value")
        st = step if type(step) is int else to_int(step, f"metrics[{i}].step")
        tv = ts if type(ts) is int else to_int(ts, f"metrics[{i}].timestamp")
        if abs(st) > _I64 or abs(tv) > _I64:
            raise InvalidInput(f"metrics[{i}] step or timestamp is out of the 64-bit range", field="metrics")
        append((key, fv, st, tv))
    return out


def normalize_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidInput("params must be a mapping of name to value", field="params")
    out: dict[str, str] = {}
    for k, v in params.items():
        check_key(k, "params.key")
        s = str(v)
        if len(s) > MAX_PARAM_VALUE:
            raise InvalidInput(f"param {k!r} value is {len(s)} characters long; the limit is {MAX_PARAM_VALUE}",
                               field="params.value")
        out[k] = s
    return out


def normalize_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInput("tags must be a mapping of name to value", field="tags")
    out: dict[str, str] = {}
    for k, v in tags.items():
        check_key(k, "tags.key")
        s = str(v)
        if len(s) > MAX_TAG_VALUE:
            raise InvalidInput(f"tag {k!r} value is {len(s)} characters long; the limit is {MAX_TAG_VALUE}",
                               field="tags.value")
        out[k] = s
    return out
