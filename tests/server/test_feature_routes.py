"""The feature store over HTTP: a remote client applies, materializes on the server, reads the server's
online store, and builds a training set locally from the same definitions; bad requests get a 4xx naming
the field and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import arsenale as ars
from arsenale.errors import InvalidInput, NotFound
from arsenale.features.store import FeatureStore
from arsenale.platform import Client
from arsenale.server.app import create_app
from tests.conftest import LiveServer
from tests.server.test_app import BAD, MISSING, assert_error

API = "/api/v1/features"
customer = ars.Entity("customer", join_keys=["customer_id"])
VIEW = ars.FeatureView("txn_stats", entities=[customer], source="dataset:transactions", timestamp="event_time",
                       ttl="30d", features={"amount": "amount", "amount_7d": "sum(amount) over 7d"})


@pytest.fixture
def remote(store_uri: str, tmp_path: Any) -> Iterator[Client]:
    backend = Client(store_uri, artifacts=str(tmp_path / "artifacts"))
    with LiveServer(create_app(backend)) as live:
        yield Client(live.url)


def _events(end: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"customer_id": rng.integers(0, 20, 300).astype("int64"),
                         "event_time": pd.to_datetime([end - timedelta(hours=float(h))
                                                       for h in rng.uniform(0, 200, 300)], utc=True).floor("ms"),
                         "amount": np.round(rng.uniform(1, 100, 300), 2)})


def test_a_remote_client_materializes_on_the_server_and_reads_what_serving_reads(remote: Client) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    remote.datasets.register("transactions", _events(end))
    fs = FeatureStore(remote)
    assert [i.version for i in fs.apply([customer, VIEW])] == [1, 1]
    [mat] = fs.materialize(end=end)
    assert mat.status == "succeeded" and mat.rows == 20
    online = fs.get_online_features(["txn_stats:amount", "txn_stats:amount_7d"],
                                    [{"customer_id": i} for i in range(22)])
    offline = fs.get_historical_features(pd.DataFrame({"customer_id": range(22), "event_timestamp": end}),
                                         ["txn_stats:amount", "txn_stats:amount_7d"])
    for col in ("amount", "amount_7d"):
        np.testing.assert_allclose(pd.to_numeric(pd.Series(online[col]), errors="coerce"),
                                   offline[col].astype(float), atol=1e-9, equal_nan=True)
    assert online["amount"][21] is None and fs.freshness()[0]["watermark"] is not None
    assert [m.id for m in remote.features.materializations("txn_stats")] == [mat.id]
    metrics = httpx.get(f"{remote.uri}/metrics").text
    assert 'arsenale_feature_collector_up 1.0' in metrics
    [freshness] = [line for line in metrics.splitlines()
                   if line.startswith("arsenale_feature_view_freshness_seconds{") and 'view="txn_stats"' in line]
    assert 'version="1"' in freshness and 0 <= float(freshness.rsplit(" ", 1)[1]) < 600
    assert 'arsenale_feature_view_materialized_until_seconds{' in metrics


def test_bad_requests_are_4xx_and_change_nothing(remote: Client) -> None:
    base = remote.uri
    with httpx.Client(base_url=base) as http:
        assert_error(http.post(f"{API}/apply", json={"definitions": []}), 400, BAD)
        assert_error(http.post(f"{API}/apply", json={"definitions": [{"kind": "view", "name": "x"}]}), 400, BAD)
        assert_error(http.post(f"{API}/apply", json={"definitions": "x"}), 400, BAD)
        assert_error(http.get(f"{API}/definitions/galaxy/x"), 400, BAD)
        assert_error(http.get(f"{API}/definitions/view/nope"), 404, MISSING)
        assert_error(http.get(f"{API}/definitions/view/..%2F..%2Fetc"), 404, MISSING)
        assert_error(http.post(f"{API}/online", json={"features": ["txn_stats:amount"], "entity_rows": []}), 400, BAD)
        assert_error(http.post(f"{API}/online", json={"features": ["nope:amount"],
                                                      "entity_rows": [{"customer_id": 1}]}), 404, MISSING)
        assert_error(http.post(f"{API}/online", json={"features": ["txn_stats:amount"],
                                                      "entity_rows": [{"customer_id": 1}] * 10_001}), 400, BAD)
        assert_error(http.post(f"{API}/materialize", json={"end": "tomorrow-ish"}), 400, BAD, "end")
        assert_error(http.post(f"{API}/materialize", json={"views": ["nope"]}), 404, MISSING)
        assert http.get(f"{API}/definitions").json() == []
    with pytest.raises(InvalidInput):
        remote.features.get("view", "")
    with pytest.raises(NotFound):
        FeatureStore(remote).get_online_features(["txn_stats:amount"], [{"customer_id": 1}])
