"""Prometheus metrics of a serving replica, on a registry of its own.

A registry per app keeps two apps in one process (tests, an embedded server) from clashing over metric
names. Label children are bound once per version: `labels()` is a dictionary lookup under a lock, which
the request path should not pay four times per request. With `PROMETHEUS_MULTIPROC_DIR` set (several
server processes behind one port) `/metrics` aggregates every process's files instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from arsenale.serving.models import LATENCY_BUCKETS_MS

__all__ = ["ServingMetrics", "VersionMetrics"]

_LABELS = ("deployment", "model", "version")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class VersionMetrics:
    """The metric children of one (deployment, model, version)."""

    duration: Any
    in_progress: Any
    batch_size: Any
    disagreements: Any
    shadow_dropped: Any
    _requests: Any
    _labels: tuple[str, str, str]
    _by_code: dict[int, Any] = field(default_factory=dict)

    def count(self, code: int) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._requests.labels(*self._labels, str(code))
        child.inc()


class ServingMetrics:
    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.duration = Histogram("arsenale_inference_request_duration_seconds",
                                  "Time from request received to answer ready, per answering version",
                                  _LABELS, buckets=[b / 1000 for b in LATENCY_BUCKETS_MS], registry=r)
        self.requests = Counter("arsenale_inference_requests_total", "Inference requests by HTTP status code",
                                (*_LABELS, "code"), registry=r)
        self.in_progress = Gauge("arsenale_inference_in_progress", "Inference requests being answered",
                                 _LABELS, registry=r, multiprocess_mode="livesum")
        self.batch_size = Histogram("arsenale_inference_batch_size", "Rows per model call", _LABELS,
                                    buckets=BATCH_BUCKETS, registry=r)
        self.disagreements = Counter("arsenale_shadow_disagreements_total",
                                     "Rows where a shadow version's prediction differs from the answer",
                                     _LABELS, registry=r)
        self.shadow_dropped = Counter("arsenale_shadow_dropped_total",
                                      "Shadow requests dropped because the mirror queue was full", _LABELS,
                                      registry=r)
        self._versions: dict[tuple[str, int], VersionMetrics] = {}

    def version(self, model: str, version: int) -> VersionMetrics:
        vm = self._versions.get((model, version))
        if vm is None:
            labels = (self.deployment, model, str(version))
            vm = self._versions[(model, version)] = VersionMetrics(
                duration=self.duration.labels(*labels), in_progress=self.in_progress.labels(*labels),
                batch_size=self.batch_size.labels(*labels), disagreements=self.disagreements.labels(*labels),
                shadow_dropped=self.shadow_dropped.labels(*labels), _requests=self.requests, _labels=labels)
        return vm

    def unrouted(self, code: int) -> None:
        """Count a request refused before any version was chosen (unreadable body)."""
        self.requests.labels(self.deployment, "", "", str(code)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
