"""A deployment that names a feature service: clients send entity keys, the server adds the online
features, and the model answers exactly what it answers on the offline training rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import arsenale as ars
from arsenale.errors import NotFound
from arsenale.features.store import FeatureStore
from arsenale.serving.app import create_serving_app

customer = ars.Entity("customer", join_keys=["customer_id"])
FEATURES = ["txn_stats:amount", "txn_stats:amount_7d", "txn_stats:n_txn_24h"]


@pytest.fixture
def client(store_uri: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ARSENALE_URI", store_uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ARSENALE_ONLINE_STORE", f"sqlite:///{tmp_path}/online.db")
    return ars.get_client()


def test_the_server_fetches_online_features_by_entity_key(client: Any) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    rng = np.random.default_rng(11)
    n = 600
    events = pd.DataFrame({"customer_id": rng.integers(0, 50, n).astype("int64"),
                           "event_time": pd.to_datetime([end - timedelta(hours=float(h))
                                                         for h in rng.uniform(0, 240, n)], utc=True).floor("ms"),
                           "amount": np.round(rng.gamma(2.0, 40.0, n), 2)})
    client.datasets.register("transactions", events)
    fs = FeatureStore(client)
    view = ars.FeatureView("txn_stats", entities=[customer], source="dataset:transactions", timestamp="event_time",
                           ttl="30d", features={"amount": "amount", "amount_7d": "sum(amount) over 7d",
                                                "n_txn_24h": "count(*) over 24h"})
    fs.apply([customer, view, ars.FeatureService("fraud", features=FEATURES)])
    fs.materialize(end=end)
    ids = list(range(50))
    train = fs.get_historical_features(pd.DataFrame({"customer_id": ids, "event_timestamp": end}), "fraud")
    X = train[["amount", "amount_7d", "n_txn_24h"]].astype(float)
    y = (X["amount_7d"] > X["amount_7d"].median()).astype(int)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    version = ars.register_model("fraud", model, signature_from=X, reference=X, labels=y).version
    client.deployments.create("fraud-api", f"fraud/{version}", feature_service="fraud")
    with pytest.raises(NotFound):
        client.deployments.create("other", f"fraud/{version}", feature_service="nope")
    app = create_serving_app(client, deployment="fraud-api")
    with TestClient(app) as tc:
        r = tc.post("/predict", json={"records": [{"customer_id": i} for i in ids]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.predict(X).tolist()
        one = tc.post("/predict", json={"customer_id": 3})
        assert one.status_code == 200 and one.json()["predictions"] == model.predict(X.iloc[[3]]).tolist()
        unknown = tc.post("/predict", json={"records": [{"customer_id": 999}]})
        assert unknown.status_code == 422 and unknown.json()["field"] == "amount"  # nothing known: nulls refused
        missing = tc.post("/predict", json={"records": [{"card_id": 3}]})
        assert missing.status_code == 400 and missing.json()["field"] == "entity_rows"
        assert tc.post("/predict", json={"records": "x"}).status_code == 400
        app.flush()
        # What was served equals the offline values at each request's time: no skew.
        report = fs.serving_skew("fraud-api")
        assert report.rows == 51 and report.mismatched_rows == 0
        assert {f.feature: f.mismatches for f in report.features} == {"amount": 0, "amount_7d": 0, "n_txn_24h": 0}
        # Events arrive after the last materialization: the online store is stale, and the skew check says so.
        arrived = datetime.now(UTC)
        late = pd.DataFrame({"customer_id": [3, 3], "event_time": pd.to_datetime([arrived, arrived], utc=True),
                             "amount": [500.0, 700.0]})
        client.datasets.register("transactions", pd.concat([events, late], ignore_index=True))
        time.sleep(0.01)
        asked = int(time.time() * 1000)
        tc.post("/predict", json={"records": [{"customer_id": 3}]})
        app.flush()
        stale = fs.serving_skew("fraud-api", since_ms=asked)
        assert stale.rows == 1 and stale.mismatched_rows == 1
        by_feature = {f.feature: f for f in stale.features}
        assert by_feature["amount"].mismatches == 1 and by_feature["amount"].max_abs_diff > 0
        assert stale.examples[0]["customer_id"] == 3 and stale.examples[0]["offline"]["amount"] == 700.0
