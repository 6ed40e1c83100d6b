"""Feature definitions: what users write, what is versioned, and what is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import arsenale as ars
from arsenale.errors import InvalidInput
from arsenale.features.definitions import (
    FeatureView,
    fingerprint,
    from_spec,
    parse_expression,
    parse_feature_ref,
    parse_window,
)

customer = ars.Entity("customer", join_keys=["customer_id"])


def view(**over: Any) -> FeatureView:
    kw: dict[str, Any] = {"entities": [customer], "source": "dataset:transactions", "timestamp": "event_time",
                          "ttl": "30d", "features": {"amount": "amount", "amount_7d": "sum(amount) over 7d",
                                                     "n_txn_24h": "count(*) over 24h"}}
    kw.update(over)
    return ars.FeatureView("txn_stats", **kw)


def test_expressions_parse_to_columns_and_windows() -> None:
    f = parse_expression("a", "sum(amount) over 7d")
    assert f.aggregation is not None and f.aggregation.function == "sum" and f.aggregation.column == "amount"
    assert f.aggregation.window_seconds == 7 * 86400 and f.expression == "sum(amount) over 7d"
    assert parse_expression("n", "COUNT(*) over 24h").expression == "count(*) over 1d"
    assert parse_expression("m", "mean(x) over 90m").aggregation.function == "avg"  # type: ignore[union-attr]
    assert parse_expression("p", "price").column == "price"
    spaced = parse_expression("q", 'avg("unit price") over 1h')
    assert spaced.source_column == "unit price" and spaced.expression == 'avg("unit price") over 1h'
    assert parse_expression("r", "mean radius").column == "mean radius"  # data frames have such names
    assert parse_window("2w") == 14 * 86400 and parse_window(timedelta(hours=1)) == 3600


@pytest.mark.parametrize("expr", ["sum(*) over 7d", "median(x) over 7d", "sum(x)", "sum(x) over", "sum(x) over -1d",
                                  "sum(x) over 0s", "x:y", "", "sum(x) over 7 parsecs", 3, None])
def test_bad_expressions_are_refused_with_the_feature_named(expr: Any) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_expression("bad", expr)
    assert e.value.field == "features.bad"


def test_the_fingerprint_covers_values_not_descriptions() -> None:
    a = view()
    assert fingerprint(a) == fingerprint(view(description="for fraud", tags={"team": "risk"}))
    assert fingerprint(a) != fingerprint(view(ttl="7d"))
    assert fingerprint(a) != fingerprint(view(features={"amount": "amount"}))
    assert fingerprint(a) != fingerprint(view(source="dataset:transactions@3"))
    assert fingerprint(from_spec("view", a.model_dump(mode="json"))) == fingerprint(a)


def test_a_dataset_object_is_followed_as_latest_unless_pinned(tmp_path: Any) -> None:
    client = ars.Client(f"sqlite:///{tmp_path}/a.db", artifacts=str(tmp_path / "art"))
    import pandas as pd

    client.datasets.register("transactions", pd.DataFrame({"customer_id": [1], "amount": [2.0],
                                                           "event_time": pd.to_datetime(["2024-01-01"], utc=True)}))
    latest = view(source=ars.Dataset("transactions", client=client))
    pinned = view(source=ars.Dataset("transactions", version=1, client=client))
    assert latest.source.version == "latest" and pinned.source.version == 1


@pytest.mark.parametrize("over, field", [
    ({"entities": []}, "entities"),
    ({"entities": ["customer"]}, "entities"),
    ({"timestamp": "event:time"}, "timestamp"),
    ({"features": {}}, "features"),
    ({"features": {"customer_id": "amount"}}, "features.customer_id"),
    ({"features": {"x": "sum(event_time) over 1d"}}, "features.x"),
    ({"features": {" x": "amount"}}, "features. x"),
    ({"ttl": "forever"}, "ttl"),
    ({"source": 42}, "source"),
    ({"source": "dataset:../etc@1"}, "source"),
])
def test_bad_views_are_refused(over: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        view(**over)
    assert e.value.field == field


def test_feature_references() -> None:
    assert str(parse_feature_ref("txn_stats:amount_7d")) == "txn_stats:amount_7d"
    assert str(parse_feature_ref("txn_stats.amount_7d")) == "txn_stats:amount_7d"
    ref = parse_feature_ref("txn_stats@2:amount_7d")
    assert (ref.view, ref.version, ref.feature) == ("txn_stats", 2, "amount_7d")
    assert parse_feature_ref("amount_ratio").view is None
    for bad in ["", "txn_stats@x:a", "txn stats:a", ":a", 7]:
        with pytest.raises(InvalidInput):
            parse_feature_ref(bad)


def ratio(df: Any) -> Any:
    return df["amount"] / df["amount_7d"]


def test_on_demand_features_keep_their_function_and_version_their_code() -> None:
    odf = ars.on_demand_feature(inputs=["amount", "txn_stats.amount_7d"])(ratio)
    assert odf.name == "ratio" and odf.inputs == ("amount", "txn_stats:amount_7d")
    assert odf.request_columns == ["amount"]
    stored = from_spec("on_demand", odf.model_dump(mode="json"))
    assert stored.resolve() is ratio  # imported back by module:qualname, its source digest checked
    changed = from_spec("on_demand", {**odf.model_dump(mode="json"), "source_digest": "0" * 32})
    with pytest.raises(InvalidInput, match="differs from the applied version"):
        changed.resolve()
    with pytest.raises(InvalidInput):
        ars.on_demand_feature(inputs=["a", "v:a"])(ratio)  # two inputs named a
    with pytest.raises(InvalidInput):
        ars.on_demand_feature(inputs="amount")(ratio)  # type: ignore[arg-type]


def test_entities_and_services() -> None:
    assert ars.Entity("card").join_keys == ("card",)
    assert ars.Entity("pair", join_keys=["a", "b"]).join_keys == ("a", "b")
    with pytest.raises(InvalidInput):
        ars.Entity("x", join_keys=["a", "a"])
    with pytest.raises(InvalidInput):
        ars.Entity("bad name")
    svc = ars.FeatureService("fraud", features=["txn_stats.amount_7d", "ratio"])
    assert svc.features == ("txn_stats:amount_7d", "ratio")
    with pytest.raises(InvalidInput):
        ars.FeatureService("fraud", features=[])
