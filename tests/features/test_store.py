"""`FeatureStore` end to end: offline and online agree, materialization is incremental and resumable, and
a model's run records the feature versions it trained on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

import arsenale as ars
from arsenale.errors import BackendUnavailable, InvalidInput, NotFound
from arsenale.features.store import FeatureStore

customer = ars.Entity("customer", join_keys=["customer_id"])
FEATURES = ["txn_stats:amount", "txn_stats:amount_7d", "txn_stats:n_txn_24h", "txn_stats:max_3d"]


def events(end: datetime, *, customers: int = 40, per: int = 15, days: float = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = customers * per
    offsets = rng.uniform(0, days * 86400, n)
    return pd.DataFrame({
        "customer_id": rng.integers(0, customers, n).astype("int64"),
        "event_time": pd.to_datetime([end - timedelta(seconds=float(s)) for s in offsets], utc=True).floor("ms"),
        "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
    })


def txn_stats(ttl: str = "30d") -> Any:
    return ars.FeatureView("txn_stats", entities=[customer], source="dataset:transactions", timestamp="event_time",
                           ttl=ttl, features={"amount": "amount", "amount_7d": "sum(amount) over 7d",
                                              "n_txn_24h": "count(*) over 24h", "max_3d": "max(amount) over 3d"})


def amount_ratio(df: pd.DataFrame) -> pd.Series:
    return df["amount"] / df["amount_7d"]


@pytest.fixture
def fs(store_uri: str, online_uri: str, tmp_path: Any) -> FeatureStore:
    client = ars.Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    return FeatureStore(client, online=online_uri)


def online_frame(fs: FeatureStore, features: list[str], ids: list[int]) -> pd.DataFrame:
    got = fs.get_online_features(features, [{"customer_id": i} for i in ids])
    return pd.DataFrame(got)


def assert_same(offline: pd.DataFrame, online: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        a = pd.to_numeric(offline[col], errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(online[col], errors="coerce").to_numpy(dtype=float)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=col)


def test_online_equals_offline_at_the_materialization_time(fs: FeatureStore) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    fs.client.datasets.register("transactions", events(end))
    odf = ars.on_demand_feature(inputs=["txn_stats.amount", "txn_stats.amount_7d"])(amount_ratio)
    fs.apply([customer, txn_stats(), odf])
    [mat] = fs.materialize(end=end)
    assert mat.status == "succeeded" and mat.rows == 40 and mat.source == "dataset:transactions@1"
    ids = list(range(45))  # 40 known customers and 5 nobody has seen
    entity_df = pd.DataFrame({"customer_id": ids, "event_timestamp": [end] * len(ids)})
    offline = fs.get_historical_features(entity_df, [*FEATURES, "amount_ratio"])
    online = online_frame(fs, [*FEATURES, "amount_ratio"], ids)
    assert list(offline["customer_id"]) == ids and list(online["customer_id"]) == ids
    assert_same(offline, online, ["amount", "amount_7d", "n_txn_24h", "max_3d", "amount_ratio"])
    assert offline["amount"].notna().sum() == 40 and online["n_txn_24h"][44] == 0
    assert fs.freshness()[0]["watermark"] == end.isoformat()


def test_materialization_is_incremental(fs: FeatureStore) -> None:
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # recent: online reads apply the TTL
    first = events(t1)
    fs.client.datasets.register("transactions", first)
    fs.apply([customer, txn_stats()])
    assert fs.materialize(end=t1)[0].rows == 40
    t2 = t1 + timedelta(hours=6)
    new = pd.DataFrame({"customer_id": [3, 3, 7], "event_time": pd.to_datetime([t1 + timedelta(hours=1),
                        t1 + timedelta(hours=2), t2], utc=True), "amount": [10.0, 20.0, 5.0]})
    fs.client.datasets.register("transactions", pd.concat([first, new], ignore_index=True))
    again = fs.materialize(end=t2)[0]
    # Only entities whose values can differ: new events, or events leaving a window since t1.
    window_7d = first[first["event_time"] > t1 - timedelta(days=7)]["customer_id"].nunique()
    assert again.rows <= window_7d and again.start_time == int(t1.timestamp() * 1000)
    entity_df = pd.DataFrame({"customer_id": list(range(40)), "event_timestamp": [t2] * 40})
    offline = fs.get_historical_features(entity_df, FEATURES)
    online = online_frame(fs, FEATURES, list(range(40)))
    # Customers untouched since t1 keep their t1 values online; with no event leaving a window they agree.
    for cid in (3, 7):
        assert_same(offline[offline.customer_id == cid].reset_index(), online[online.customer_id == cid]
                    .reset_index(), ["amount", "amount_7d", "n_txn_24h"])
    assert online.loc[7, "amount"] == 5.0 and online.loc[3, "amount"] == 20.0
    assert fs.materialize(end=t2)[0].rows == 0  # nothing new


def test_an_interrupted_materialization_keeps_the_watermark_and_resumes(fs: FeatureStore,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    fs.client.datasets.register("transactions", events(end))
    fs.apply([customer, txn_stats()])
    real = type(fs.online).write

    def failing(self: Any, *args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(type(fs.online), "write", failing)
    with pytest.raises(OSError):
        fs.materialize(end=end)
    [failed] = fs.registry.materializations("txn_stats")
    assert failed.status == "failed" and "disk full" in (failed.error or "")
    assert fs.online.watermark("txn_stats@1") is None
    monkeypatch.setattr(type(fs.online), "write", real)
    assert fs.materialize(end=end)[0].rows == 40
    assert fs.online.watermark("txn_stats@1") == end


def test_online_reads_respect_the_ttl_of_plain_features(fs: FeatureStore) -> None:
    end = datetime.now(UTC)
    old = pd.DataFrame({"customer_id": [1, 2], "event_time": pd.to_datetime([end - timedelta(days=3),
                                                                             end - timedelta(hours=1)], utc=True),
                        "amount": [100.0, 7.0]})
    fs.client.datasets.register("transactions", old)
    fs.apply([customer, txn_stats(ttl="2d")])
    fs.materialize(end=end)
    got = fs.get_online_features(["txn_stats:amount", "txn_stats:amount_7d"], [{"customer_id": 1},
                                                                                {"customer_id": 2}])
    assert got["amount"] == [None, 7.0]  # customer 1's last event is older than the TTL
    assert got["amount_7d"] == [100.0, 7.0]  # a window is bounded by itself, not by the TTL


def test_training_inside_a_run_records_feature_versions_and_data(store_uri: str, tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    fs = ars.FeatureStore(online=f"sqlite:///{tmp_path}/online.db")
    end = datetime(2026, 3, 1, tzinfo=UTC)
    fs.client.datasets.register("transactions", events(end))
    fs.apply([customer, txn_stats()])
    entity_df = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [end, end]})
    with ars.start_run(experiment="features") as run:
        train = fs.get_historical_features(entity_df, FEATURES)
    assert train.attrs["arsenale.features"] == ["txn_stats@1:amount", "txn_stats@1:amount_7d",
                                                "txn_stats@1:n_txn_24h", "txn_stats@1:max_3d"]
    stored = fs.client.tracking.get_run(run.info.run_id)
    assert "txn_stats@1:amount_7d" in stored.data.tags["ars.features"]
    assert [(i.name, i.version) for i in fs.client.datasets.inputs(run.info.run_id)] == [("transactions", 1)]


def test_bad_requests(fs: FeatureStore) -> None:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    fs.client.datasets.register("transactions", events(end))
    fs.apply([customer, txn_stats()])
    entity_df = pd.DataFrame({"customer_id": [1], "event_timestamp": [end]})
    with pytest.raises(InvalidInput):
        fs.get_historical_features(entity_df, ["txn_stats:nope"])
    with pytest.raises(NotFound):
        fs.get_historical_features(entity_df, ["other:amount"])
    with pytest.raises(InvalidInput):
        fs.get_online_features(FEATURES, [{"card": 1}])
    with pytest.raises(InvalidInput):
        fs.get_online_features(FEATURES, [])
    with pytest.raises(InvalidInput):
        fs.get_online_features(FEATURES, {"customer_id": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        fs.materialize(end="yesterday-ish")
    with pytest.raises(InvalidInput):
        fs.materialize(end=end, start=end + timedelta(days=1))


def test_redis_down_is_a_clear_error_and_the_embedded_store_keeps_working(store_uri: str, tmp_path: Any) -> None:
    client = ars.Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    end = datetime.now(UTC)
    client.datasets.register("transactions", events(end))
    down = FeatureStore(client, online="redis://127.0.0.1:1/0")
    down.apply([customer, txn_stats()])
    with pytest.raises(BackendUnavailable, match="online store"):
        down.materialize(end=end)
    with pytest.raises(BackendUnavailable):
        down.get_online_features(FEATURES, [{"customer_id": 1}])
    embedded = FeatureStore(client, online=f"sqlite:///{tmp_path}/online.db")
    assert embedded.materialize(end=end)[0].rows == 40
    assert embedded.get_online_features(["txn_stats:amount"], [{"customer_id": 1}])["amount"][0] is not None
