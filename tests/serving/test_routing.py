"""Routing: shares converge to the weights, sticky keys keep their version, canary keys stay on the canary."""

from __future__ import annotations

import random
from collections import Counter

from arsenale.serving.models import ModelRef, Route, TrafficPolicy
from arsenale.serving.routing import Router


def _policy(*weights: float, sticky: str | None = None) -> TrafficPolicy:
    return TrafficPolicy(routes=[Route(model="m", version=i + 1, weight=w) for i, w in enumerate(weights)],
                         shadows=[ModelRef(model="m", version=9)], sticky_key=sticky)


def test_weights_converge() -> None:
    router = Router(_policy(70, 20, 10), rng=random.Random(42))
    counts = Counter(router.choose().version for _ in range(2000))
    for version, share in ((1, 0.7), (2, 0.2), (3, 0.1)):
        assert abs(counts[version] / 2000 - share) < 0.04, counts
    assert [s.key for s in router.shadows] == ["m/9"]
    assert router.primary.version == 1


def test_a_route_with_no_weight_is_never_chosen() -> None:
    router = Router(_policy(100, 0))
    assert {router.choose().version for _ in range(500)} == {1}
    assert {router.choose(f"user-{i}").version for i in range(500)} == {1}


def test_sticky_keys_are_stable_and_spread() -> None:
    router = Router(_policy(50, 50, sticky="user"))
    first = {f"user-{i}": router.choose(f"user-{i}").version for i in range(2000)}
    again = Router(_policy(50, 50, sticky="user"))  # another replica, same policy
    assert all(again.choose(k).version == v for k, v in first.items())
    share = sum(v == 2 for v in first.values()) / len(first)
    assert 0.45 < share < 0.55


def test_a_growing_canary_keeps_its_keys() -> None:
    steps = [Router(_policy(100 - s, s, sticky="user")) for s in (5, 25, 50)]
    keys = [f"k{i}" for i in range(3000)]
    on_canary = [{k for k in keys if r.choose(k).version == 2} for r in steps]
    assert on_canary[0] <= on_canary[1] <= on_canary[2]
    assert abs(len(on_canary[1]) / len(keys) - 0.25) < 0.04
