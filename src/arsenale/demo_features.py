"""The demo's feature chapter: the published dataset becomes features of a patient, and the training set
is a point-in-time retrieval from the feature store instead of a read of the table.

Each clean row is one patient's measurements, taken at a known time; the diagnosis (the label) comes an
hour later. The training set asks the feature store for every patient's measurements as of the diagnosis
time, so no value measured after the label could leak in. The view is then materialized into the embedded
online store, and a few patients' online features are checked against the offline ones.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

MEASUREMENTS = "breast-cancer-measurements"
VIEW = "measurements"
SERVICE = "diagnosis"


def build_training_set(ars: Any, dataset: Any) -> tuple[Any, list[str], Any]:
    """The labelled training frame from the feature store, its feature columns, and the FeatureStore."""
    import pandas as pd

    frame = ars.Dataset(dataset.name, version=dataset.version).to_pandas()
    features = [c for c in frame.columns if c != "target"]
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=len(frame) + 24)
    measured_at = pd.to_datetime([start + timedelta(hours=i) for i in range(len(frame))], utc=True)
    events = frame[features].assign(patient_id=range(len(frame)), measured_at=measured_at)
    version = ars.register_dataset(MEASUREMENTS, events, description=f"{dataset.uri} as timed patient measurements")
    patient = ars.Entity("patient", join_keys=["patient_id"], description="one person examined")
    view = ars.FeatureView(VIEW, entities=[patient], source=ars.Dataset(MEASUREMENTS), timestamp="measured_at",
                           ttl="365d", features=features, description="the 30 measurements of a fine-needle aspirate")
    service = ars.FeatureService(SERVICE, features=[f"{VIEW}:{f}" for f in features],
                                 description="what the breast-cancer classifier reads")
    fs = ars.FeatureStore()
    applied = fs.apply([patient, view, service])
    labels = pd.DataFrame({"patient_id": range(len(frame)), "event_timestamp": measured_at + pd.Timedelta(hours=1),
                           "target": frame["target"].to_numpy()})
    t0 = time.perf_counter()
    train = fs.get_historical_features(labels, SERVICE)
    took = (time.perf_counter() - t0) * 1000
    view_version = next(i.version for i in applied if i.kind == "view")
    print(f"Features: view {VIEW}@{view_version} ({len(features)} features of a patient) over "
          f"dataset:{MEASUREMENTS}@{version.version}; training set of {len(train)} labelled rows retrieved "
          f"point-in-time in {took:.0f} ms")
    return train, features, fs


def materialize_and_check(fs: Any, train: Any, features: list[str]) -> dict[str, Any]:
    """Online values as serving reads them, checked against the offline training rows."""
    import numpy as np

    t0 = time.perf_counter()
    [mat] = fs.materialize(end="now", views=[VIEW])
    took = (time.perf_counter() - t0) * 1000
    patients = [0, 1, 2, 3, 4]
    t1 = time.perf_counter()
    online = fs.get_online_features(SERVICE, [{"patient_id": p} for p in patients])
    first_ms = (time.perf_counter() - t1) * 1000  # opens the online store and resolves the service
    t1 = time.perf_counter()
    online = fs.get_online_features(SERVICE, [{"patient_id": p} for p in patients])
    read_ms = (time.perf_counter() - t1) * 1000
    offline = train.set_index("patient_id").loc[patients, features]
    same = all(np.allclose(offline[f].to_numpy(float), np.asarray(online[f], float)) for f in features)
    print(f"  materialized {mat.rows} patients into the online store in {took:.0f} ms; online read of "
          f"{len(patients)} patients in {read_ms:.2f} ms ({first_ms:.1f} ms for the first, which opens the store), "
          f"{'identical to' if same else 'DIFFERENT from'} the training rows")
    return {"rows": mat.rows, "consistent": same}
