"""Feature freshness as Prometheus gauges on the server's /metrics.

    arsenale_feature_view_materialized_until_seconds{view="txn_stats",version="3",online_store="redis://…"} 1.79e9
    arsenale_feature_view_freshness_seconds{view="txn_stats",version="3",online_store="redis://…"} 42.0

For the newest version of every feature view and each online store it was materialized into: the end of
the newest successful materialization (Unix time) and its age at scrape time, with the rows that run wrote.
Read from the metadata store at scrape time (one query), like the monitor gauges, so a materialization run
by the CLI, a scheduler or another replica shows at the next scrape. A failing store does not fail the
scrape: `arsenale_feature_collector_up` drops to 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from arsenale.store import features as sql
from arsenale.store.db import read

__all__ = ["FeatureCollector"]

log = logging.getLogger("arsenale.server")
_LABELS = ["view", "version", "online_store"]


class FeatureCollector(Collector):
    """Reads the newest successful materialization of every feature view at each scrape."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine  # a callable: the server's client is built on its first request

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()
        yield self._up(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        until, age, rows = self._families()
        try:
            with read(self._engine()) as conn:
                found = sql.newest_materializations(conn)
        except Exception as exc:  # a scrape must still answer; the log and the `up` gauge say why
            log.warning("feature metrics: cannot read the materializations: %s", exc)
            yield self._up(0.0)
            return
        now = time.time()
        for m in found:
            labels = [m.view, str(m.version), m.online_store]
            until.add_metric(labels, m.end_time / 1000)
            age.add_metric(labels, max(0.0, now - m.end_time / 1000))
            rows.add_metric(labels, float(m.rows))
        yield until
        yield age
        yield rows
        yield self._up(1.0)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("arsenale_feature_view_materialized_until_seconds",
                                  "End of the newest successful materialization (Unix time).", labels=_LABELS),
                GaugeMetricFamily("arsenale_feature_view_freshness_seconds",
                                  "Age of the online values: now minus the newest materialization's end.",
                                  labels=_LABELS),
                GaugeMetricFamily("arsenale_feature_view_materialized_rows",
                                  "Entity rows the newest materialization wrote.", labels=_LABELS))

    @staticmethod
    def _up(value: float | None) -> GaugeMetricFamily:
        family = GaugeMetricFamily("arsenale_feature_collector_up",
                                   "1 when the feature materializations were read from the store at this scrape.")
        if value is not None:
            family.add_metric([], value)
        return family
