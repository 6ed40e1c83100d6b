"""Choosing the version that answers a request, from a deployment's traffic policy.

Routes own consecutive ranges of [0, 100) in policy order. A request without a sticky value falls at a
random point; a sticky value (a user id, a session) is hashed to a fixed point, so the same key gets the
same version for as long as the policy is unchanged. Because a canary is listed after its baseline and
only grows, a key that reached the canary at one step stays on it at the next.
"""

from __future__ import annotations

import bisect
import random

import blake3

from arsenale.serving.models import ModelRef, Route, TrafficPolicy

__all__ = ["Router", "sticky_point"]

_SCALE = 2.0 ** 64


def sticky_point(value: str) -> float:
    """A stable point in [0, 1) for a sticky value, the same in every replica and process."""
    return int.from_bytes(blake3.blake3(value.encode("utf-8", "surrogatepass")).digest(8), "big") / _SCALE


class Router:
    """Weighted (or sticky) choice among a policy's routes; the shadows ride along for mirroring."""

    def __init__(self, policy: TrafficPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.routes: list[Route] = [r for r in policy.routes if r.weight > 0]
        self.shadows: list[ModelRef] = list(policy.shadows)
        self.sticky_key = policy.sticky_key
        self._total = sum(r.weight for r in self.routes)
        edges, acc = [], 0.0
        for r in self.routes:
            acc += r.weight
            edges.append(acc / self._total)
        edges[-1] = 1.0
        self._edges = edges
        self._random = (rng or random.Random()).random
        self.primary: Route = max(self.routes, key=lambda r: r.weight)

    def choose(self, sticky_value: str | None = None) -> Route:
        if len(self.routes) == 1:
            return self.routes[0]
        point = self._random() if sticky_value is None else sticky_point(sticky_value)
        return self.routes[min(bisect.bisect_right(self._edges, point), len(self.routes) - 1)]
