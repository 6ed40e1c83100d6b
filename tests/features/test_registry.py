"""Feature definitions in the store: versions by fingerprint, atomic apply, references that must resolve,
the audit trail — on SQLite, PostgreSQL and over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

import arsenale as ars
from arsenale.errors import InvalidInput, NotFound
from arsenale.features.definitions import FeatureView

customer = ars.Entity("customer", join_keys=["customer_id"])


def view(**over: Any) -> FeatureView:
    kw: dict[str, Any] = {"entities": [customer], "source": "dataset:transactions", "timestamp": "event_time",
                          "ttl": "30d", "features": {"amount": "amount", "amount_7d": "sum(amount) over 7d"}}
    kw.update(over)
    return ars.FeatureView("txn_stats", **kw)


def ratio(df: Any) -> Any:
    return df["amount"] / df["amount_7d"]


def test_apply_versions_by_fingerprint_and_is_idempotent(client: Any) -> None:
    first = client.features.apply([customer, view()])
    assert [(i.kind, i.name, i.version, i.created) for i in first] == [
        ("entity", "customer", 1, True), ("view", "txn_stats", 1, True)]
    again = client.features.apply([customer, view(description="same values")])
    assert [(i.version, i.created) for i in again] == [(1, False), (1, False)]
    changed = client.features.apply([view(ttl="7d")])
    assert (changed[0].version, changed[0].created) == (2, True)
    assert [v.version for v in client.features.versions("view", "txn_stats")] == [1, 2]
    assert client.features.get("view", "txn_stats").version == 2
    assert client.features.definition("view", "txn_stats", 1).ttl_seconds == 30 * 86400
    assert {(i.kind, i.name, i.version) for i in client.features.list()} == {("entity", "customer", 1),
                                                                            ("view", "txn_stats", 2)}
    actions = [e.action for e in client.audit.entries(limit=10)]
    assert actions.count("features.view.apply") == 2 and client.audit.verify().ok


def test_references_must_resolve_and_a_failed_apply_writes_nothing(client: Any) -> None:
    with pytest.raises(NotFound, match="entity 'customer'"):
        client.features.apply([view()])
    odf = ars.on_demand_feature(inputs=["amount", "txn_stats.amount_30d"])(ratio)
    with pytest.raises(NotFound, match="amount_30d"):
        client.features.apply([customer, view(), odf])
    assert client.features.list() == []  # neither the entity nor the view of the refused set
    good = ars.on_demand_feature(inputs=["amount", "txn_stats.amount_7d"])(ratio)
    svc = ars.FeatureService("fraud", features=["txn_stats:amount_7d", "ratio"])
    infos = client.features.apply([customer, view(), good, svc])
    assert [i.kind for i in infos] == ["entity", "view", "on_demand", "service"]
    with pytest.raises(NotFound):
        client.features.apply([ars.FeatureService("bad", features=["nope"])])
    with pytest.raises(NotFound):
        client.features.apply([ars.FeatureService("bad", features=["txn_stats@9:amount"])])


def test_a_view_whose_keys_differ_from_its_entities_is_refused(client: Any) -> None:
    client.features.apply([customer])
    odd = ars.FeatureView("odd", entities=["customer"], join_keys=["card_id"], source="dataset:t",
                          timestamp="ts", features=["amount"])
    with pytest.raises(InvalidInput, match="join keys"):
        client.features.apply([odd])


@pytest.mark.parametrize("bad", [None, "view", [], [{"kind": "galaxy"}], [{"kind": "view", "name": "x"}], [42],
                                 [customer, customer]])
def test_bad_apply_input(client: Any, bad: Any) -> None:
    with pytest.raises(InvalidInput):
        client.features.apply(bad)
    assert client.features.list() == []


def test_unknown_definitions(client: Any) -> None:
    with pytest.raises(NotFound):
        client.features.get("view", "nope")
    with pytest.raises(NotFound):
        client.features.versions("entity", "nope")
    with pytest.raises(InvalidInput):
        client.features.get("galaxy", "x")
    client.features.apply([customer, view()])
    with pytest.raises(NotFound):
        client.features.get("view", "txn_stats", 7)


def _apply_ttls(uri: str, worker: int, start: Any, out: Any) -> None:
    client = ars.Client(uri)
    start.wait(30)
    for i in range(3):
        info = client.features.apply([customer, view(ttl=f"{100 + worker * 10 + i}d")])[1]
        out.put((info.version, info.definition().ttl_seconds))


def test_concurrent_applies_get_distinct_versions(store_uri: str) -> None:
    from tests.conftest import race

    ars.Client(store_uri).features.apply([customer])
    results = race("spawn", 3, 3, _apply_ttls, store_uri)
    assert sorted(v for v, _ in results) == list(range(1, 10))
    stored = {v.version: v.definition().ttl_seconds for v in ars.Client(store_uri).features.versions("view",
                                                                                                  "txn_stats")}
    assert stored == dict(results)  # each version holds the definition its apply was told
