"""LLM monitors: stored traces, window by window, as values the model monitors' alert rules understand.

    client.monitors.create_llm("support-bot", trace_name="answer", prompt="support", window="1h")
    client.monitors.alerts.add_rule("support-bot", "score.groundedness < 0.7 for 2 windows")
    client.monitors.run("support-bot")         # one window, stored like a model monitor's, rules evaluated

A window holds the traces that STARTED in it (a trace's start is its root span's); a trace still running
counts, without a latency. Its values:

    traces, errors, error_rate               a trace is an error when one of its spans has status ERROR
    latency_p50, latency_p95, latency_p99    ms, from start to end of the trace (linear interpolation
    latency_mean                             between the closest ranks, numpy's default)
    cost_total, cost_mean                    over the traces whose cost is known (priced models)
    tokens_in, tokens_out                    summed
    score.<name>                             the mean over traces of each trace's mean score of that name
    feedback_count, negative_feedback_share  traces with human feedback (the monitor's `feedback` score,
                                             `thumbs` by default), and the share of the window's traces
                                             whose latest feedback is <= 0 (thumbs down)

A value with nothing to measure (no traces, no scores) is None: "no data" to the rule evaluator, which
neither fires nor resolves on it. Score names that are not rule metric names (a space, a slash) are
written with `_` in their place, so every score can be alerted on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from arsenale.errors import InvalidInput
from arsenale.monitoring.models import TraceFilter
from arsenale.store import llm_windows as sql
from arsenale.store.db import read
from arsenale.store.tables import MAX_NAME

__all__ = ["METRICS", "SCORE_PREFIX", "check_filter", "check_llm_metric", "prompt_match", "score_metric",
           "window_values"]

METRICS = ("traces", "errors", "error_rate", "latency_p50", "latency_p95", "latency_p99", "latency_mean",
           "cost_total", "cost_mean", "tokens_in", "tokens_out", "feedback_count", "negative_feedback_share")
SCORE_PREFIX = "score."
MAX_TAGS = 32
MAX_TAG_VALUE = 1000
PROMPT_URI = "prompts:/"  # how the SDK names a prompt version on a trace: prompts:/<name>/<version>
_PROMPT = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})(?:[/@](?P<version>[0-9]{1,9}))?")
_NOT_METRIC = re.compile(r"[^A-Za-z0-9_\-.]")


# ---- checking what a user gives ------------------------------------------------------------------------------


def _optional_name(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or not value.isprintable():
        raise InvalidInput(f"{field} must be a non-empty string of at most {MAX_NAME} printable characters, "
                           f"got {value!r:.60}", field=field)
    return value


def prompt_match(prompt: str) -> tuple[list[str], list[str]]:
    """(exact values, prefixes) of a trace's stored prompt that `prompt` ("support", "support/3",
    "support@3" or "prompts:/support/3") matches: without a version, every version of the prompt."""
    text = prompt.removeprefix(PROMPT_URI)
    match = _PROMPT.fullmatch(text)
    if match is None:
        raise InvalidInput(f"prompt must be a prompt name, optionally with /version (e.g. 'support/3'); got "
                           f"{prompt!r:.80}", field="prompt")
    name, version = match["name"], match["version"]
    if version is not None:
        version = str(int(version))
        return [f"{PROMPT_URI}{name}/{version}", f"{name}/{version}", f"{name}@{version}"], []
    return [name, f"{PROMPT_URI}{name}"], [f"{PROMPT_URI}{name}/"]


def check_filter(trace_name: Any = None, prompt: Any = None, tags: Any = None,
                 feedback: Any = "thumbs") -> TraceFilter:
    """The trace filter of an LLM monitor, each field checked (InvalidInput naming it)."""
    trace_name = _optional_name(trace_name, "trace_name")
    prompt = _optional_name(prompt, "prompt")
    if prompt is not None:
        prompt_match(prompt)
    if tags is None:
        tags = {}
    if not isinstance(tags, Mapping):
        raise InvalidInput("tags must be an object of attribute: value", field="tags")
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags, got {len(tags)}", field="tags")
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > MAX_NAME or not key.isprintable():
            raise InvalidInput(f"a tag name must be a non-empty string of at most {MAX_NAME} characters, got "
                               f"{key!r:.60}", field="tags")
        if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and len(value) > MAX_TAG_VALUE) \
                or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidInput(f"tag {key!r:.60} must have a string, number or boolean value (text up to "
                               f"{MAX_TAG_VALUE} characters), got {value!r:.60}", field="tags")
    feedback = _optional_name(feedback, "feedback")
    if feedback is None:
        raise InvalidInput("feedback must name the score that holds human feedback", field="feedback")
    return TraceFilter(trace_name=trace_name, prompt=prompt, tags=dict(tags), feedback=feedback)


def score_metric(name: str) -> str:
    """The rule metric of score `name`: `score.<name>`, characters a metric cannot hold replaced by `_`."""
    parts = _NOT_METRIC.sub("_", name).split(".")
    return SCORE_PREFIX + ".".join(p or "_" for p in parts)


def check_llm_metric(metric: str) -> None:
    """An alert rule on an LLM monitor must name one of its values (InvalidInput otherwise), so a typo is
    refused when the rule is added instead of leaving it silent forever."""
    if metric in METRICS or (metric.startswith(SCORE_PREFIX) and len(metric) > len(SCORE_PREFIX)):
        return
    raise InvalidInput(f"{metric!r:.80} is not a value of an LLM monitor: use one of {', '.join(METRICS)} "
                       f"or score.<name>", field="when")


# ---- one window ----------------------------------------------------------------------------------------------


def _has_tags(attributes: str, tags: Mapping[str, Any]) -> bool:
    if not tags:
        return True
    try:
        held = json.loads(attributes or "{}")
    except ValueError:
        return False
    if not isinstance(held, dict):
        return False
    for key, want in tags.items():
        got = held.get(key)
        if got != want and str(got) != str(want) or got is None:
            return False
    return True


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"latency_p50": None, "latency_p95": None, "latency_p99": None, "latency_mean": None}
    import numpy as np

    p50, p95, p99 = (float(v) for v in np.percentile(np.asarray(values, dtype=float), [50, 95, 99]))
    return {"latency_p50": p50, "latency_p95": p95, "latency_p99": p99,
            "latency_mean": float(sum(values) / len(values))}


def window_values(engine: Engine, traces: TraceFilter, start_ms: int, end_ms: int
                  ) -> tuple[int, dict[str, float | None], dict[str, Any]]:
    """(number of traces, values, report) of the traces that started in [start_ms, end_ms)."""
    exact, prefixes = prompt_match(traces.prompt) if traces.prompt is not None else ([], [])
    with read(engine) as conn:  # one snapshot: the traces and their scores read together
        rows = [r for r in sql.window_traces(conn, since_ns=start_ms * 1_000_000, until_ns=end_ms * 1_000_000,
                                             name=traces.trace_name, prompts=exact, prompt_prefixes=prefixes,
                                             with_attributes=bool(traces.tags))
                if not traces.tags or _has_tags(r.attributes, traces.tags)]
        scores = list(sql.trace_scores(conn, [r.trace_id for r in rows]))
    n = len(rows)
    errors = sum(r.status == "ERROR" for r in rows)
    latencies = [(r.end_ns - r.start_ns) / 1e6 for r in rows if r.end_ns is not None and r.start_ns is not None]
    costs = [float(r.cost) for r in rows if r.cost is not None]
    values: dict[str, float | None] = {
        "traces": float(n), "errors": float(errors), "error_rate": errors / n if n else None,
        **_percentiles(latencies),
        "cost_total": float(sum(costs)) if costs or not n else None,
        "cost_mean": float(sum(costs)) / len(costs) if costs else None,
        "tokens_in": float(sum(int(r.input_tokens or 0) for r in rows)),
        "tokens_out": float(sum(int(r.output_tokens or 0) for r in rows)),
    }
    per_trace: dict[str, dict[str, list[float]]] = {}
    latest_feedback: dict[str, float] = {}
    for trace_id, name, value in scores:
        if value is None or not math.isfinite(value):
            continue
        per_trace.setdefault(score_metric(name), {}).setdefault(trace_id, []).append(float(value))
        if name == traces.feedback:
            latest_feedback[trace_id] = float(value)  # scores come oldest first: the last one wins
    scored: dict[str, int] = {}
    for metric, by_trace in sorted(per_trace.items()):
        means = [sum(v) / len(v) for v in by_trace.values()]
        values[metric] = sum(means) / len(means)
        scored[metric] = len(means)
    negative = sum(v <= 0 for v in latest_feedback.values())
    values["feedback_count"] = float(len(latest_feedback))
    values["negative_feedback_share"] = negative / n if n else None
    values = {k: None if v is None or not math.isfinite(v) else float(v) for k, v in values.items()}
    report = {"llm": {"filter": traces.model_dump(), "traces": n, "with_latency": len(latencies),
                      "with_cost": len(costs), "scored_traces": scored, "negative_feedback": negative}}
    return n, values, report
