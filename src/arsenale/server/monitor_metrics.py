"""Every monitor's newest evaluation as Prometheus gauges on the server's /metrics.

    arsenale_monitor_drift_share{monitor="fraud-api",deployment="fraud-api"} 0.23
    arsenale_monitor_feature_drift{monitor="fraud-api",deployment="fraud-api",feature="amount"} 0.41
    arsenale_llm_monitor_latency_p95_ms{monitor="support-bot",deployment=""} 880
    arsenale_llm_monitor_score{monitor="support-bot",score="groundedness"} 0.7

A custom collector rather than gauges set after each run: it reads the store at scrape time, so a run
made by another server replica, the scheduler or the CLI shows up at the next scrape, and a deleted
monitor disappears instead of exporting its last values forever. A scrape costs one query (the newest run
of every monitor, through the index on (monitor, window_end), without the large report column) and a
JSON parse of each run's values: about 10 ms for 50 monitors of 20 features each.

A value that is None (accuracy before any label arrived, missing share of an empty window) is left out,
not exported as 0 or NaN, so alerting rules see "no data" rather than a false reading. A failing store
does not fail the scrape: the request metrics still answer, and `arsenale_monitor_collector_up` drops
to 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from arsenale.store import monitors as sql
from arsenale.store.db import read

__all__ = ["MonitorCollector"]

log = logging.getLogger("arsenale.server")

_LABELS = ["monitor", "deployment"]
# (metric name, help, key in MonitorRun.values)
_GAUGES = (
    ("arsenale_monitor_drift_share", "Share of features that drifted in the newest evaluation.",
     "drift_share"),
    ("arsenale_monitor_dataset_drift", "1 when the newest evaluation flagged the dataset as drifted.",
     "dataset_drift"),
    ("arsenale_monitor_drifted_columns", "Features that drifted in the newest evaluation.",
     "drifted_columns"),
    ("arsenale_monitor_rows", "Logged requests in the newest evaluation's window.", "rows"),
    ("arsenale_monitor_labelled_rows", "Rows of the newest window whose labels have arrived.", "labelled"),
    ("arsenale_monitor_quality_errors", "Data-quality errors in the newest evaluation.", "quality.errors"),
    ("arsenale_monitor_quality_warnings", "Data-quality warnings in the newest evaluation.",
     "quality.warnings"),
    ("arsenale_monitor_quality_missing_share", "Share of missing cells in the newest evaluation's window.",
     "quality.missing_share"),
    ("arsenale_monitor_accuracy",
     "Accuracy on the newest window's labelled rows (absent until labels arrive).", "accuracy"),
    # LLM monitors (`monitors.create_llm`): their windows hold these instead of drift figures.
    ("arsenale_llm_monitor_traces", "Traces in an LLM monitor's newest window.", "traces"),
    ("arsenale_llm_monitor_error_rate", "Share of the newest window's traces with an error.", "error_rate"),
    ("arsenale_llm_monitor_latency_p50_ms", "Median trace latency in the newest window (ms).", "latency_p50"),
    ("arsenale_llm_monitor_latency_p95_ms", "95th percentile trace latency in the newest window (ms).",
     "latency_p95"),
    ("arsenale_llm_monitor_latency_p99_ms", "99th percentile trace latency in the newest window (ms).",
     "latency_p99"),
    ("arsenale_llm_monitor_cost_total", "Cost of the newest window's traces (price-table currency).",
     "cost_total"),
    ("arsenale_llm_monitor_tokens_in", "Input tokens in the newest window.", "tokens_in"),
    ("arsenale_llm_monitor_tokens_out", "Output tokens in the newest window.", "tokens_out"),
    ("arsenale_llm_monitor_negative_feedback_share", "Share of the newest window's traces with thumbs down.",
     "negative_feedback_share"),
)
_FEATURE_PREFIX, _FEATURE_SUFFIX = "drift.", ".statistic"
_SCORE_PREFIX = "score."


class MonitorCollector(Collector):
    """Reads the newest run of every monitor from the store at each scrape (see the module docstring)."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        # A callable, because the server's client (and so its engine) is built on the first request.
        self._engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples: registering must not touch the store (the client may not exist
        yet)."""
        gauges, *others = self._families()
        yield from gauges.values()
        yield from others
        yield self._up(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges, feature, score, stamp = self._families()
        try:
            with read(self._engine()) as conn:
                rows = sql.newest_runs(conn)
        except Exception as exc:  # a scrape must still answer; the log and the `up` gauge say why
            log.warning("monitor metrics: cannot read the newest runs: %s", exc)
            yield self._up(0.0)
            return
        for row in rows:
            labels = [row.name, row.deployment]
            try:
                values = json.loads(row.values)
            except ValueError:
                values = None
            if not isinstance(values, dict):  # one bad row must not hide every other monitor
                log.warning("monitor metrics: the newest run of monitor %r has unreadable values", row.name)
                continue
            for key, family in gauges.items():
                value = values.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    family.add_metric(labels, float(value))
            for key, value in values.items():
                if (key.startswith(_FEATURE_PREFIX) and key.endswith(_FEATURE_SUFFIX)
                        and isinstance(value, (int, float)) and not isinstance(value, bool)):
                    column = key[len(_FEATURE_PREFIX):-len(_FEATURE_SUFFIX)]
                    feature.add_metric([*labels, column], float(value))
                elif (key.startswith(_SCORE_PREFIX) and isinstance(value, (int, float))
                        and not isinstance(value, bool)):
                    score.add_metric([row.name, key[len(_SCORE_PREFIX):]], float(value))
            stamp.add_metric(labels, row.timestamp / 1000)
        yield from gauges.values()
        yield feature
        yield score
        yield stamp
        yield self._up(1.0)

    @staticmethod
    def _families() -> tuple[dict[str, GaugeMetricFamily], GaugeMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily]:
        gauges = {key: GaugeMetricFamily(name, doc, labels=_LABELS) for name, doc, key in _GAUGES}
        feature = GaugeMetricFamily("arsenale_monitor_feature_drift",
                                    "Drift test statistic of each feature in the newest evaluation.",
                                    labels=[*_LABELS, "feature"])
        score = GaugeMetricFamily("arsenale_llm_monitor_score",
                                  "Mean of each score (per trace, then across traces) in an LLM monitor's newest "
                                  "window.", labels=["monitor", "score"])
        stamp = GaugeMetricFamily("arsenale_monitor_last_run_timestamp_seconds",
                                  "When the newest evaluation was made (Unix time).", labels=_LABELS)
        return gauges, feature, score, stamp

    @staticmethod
    def _up(value: float | None) -> GaugeMetricFamily:
        family = GaugeMetricFamily("arsenale_monitor_collector_up",
                                   "1 when the newest monitor runs were read from the store at this scrape.")
        if value is not None:
            family.add_metric([], value)
        return family
