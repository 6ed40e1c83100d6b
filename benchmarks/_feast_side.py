"""Feast half of benchmarks/features.py. Runs inside benchmarks/.venv-feast (Feast 0.67).

Not meant to be run by hand, but it can be (features.py writes the data and the spec):

    benchmarks/.venv-feast/bin/python benchmarks/_feast_side.py historical \
        --spec /tmp/x/data/spec.json --work /tmp/x/feast-hist --out /tmp/x/feast-hist/result.json

The repository is configured in Python (no feature_store.yaml): project "bench", provider
"local", a registry file, the file offline store (Dask over Parquet) and a SQLite online store,
all inside --work. Definitions: entity `customer` (join key customer_id, INT64) and the
FeatureView `txn_stats` over a FileSource of the events Parquet (timestamp field `event_time`),
ttl 30 days, features f1, f2, f3 (Float64). `store.apply([...])` happens before any timing.

Operations (the same work as _features_arsenale_side.py):

* historical  reads the entity rows (customer_id, event_timestamp) with pandas, adds a row_id
              column (Feast sorts its output by time and drops rows, so the driver joins on it),
              then times `get_historical_features(entity_df, [...]).to_df()`. The values go to
              <work>/values.parquet (row_id, customer_id, f1, f2, f3), untimed.
* materialize times `materialize(start, end)` over the whole period into the SQLite online store.
* online      (in the folder `materialize` left) times `get_online_features(...).to_dict()` for
              each of the requests in spec["requests_path"] (lists of customer ids), after 20
              untimed warm-up requests; the values go to <work>/online.npy.

--mem-gb caps the process's address space (RLIMIT_AS) so that running out of memory ends in a
MemoryError here instead of the kernel's OOM killer. Writes one JSON object to --out, including
the process's peak RSS (ru_maxrss) and its RSS before the timed section.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _memory import peak_mib, rss_mib

FEATURES = ["f1", "f2", "f3"]


def make_store(spec: dict, work: Path):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.types import Float64, Int64

    work.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(work / "registry.db"),
        online_store=SqliteOnlineStoreConfig(path=str(work / "online.db")),
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=work,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name="events", path=spec["events_path"], timestamp_field="event_time")
    view = FeatureView(
        name="txn_stats",
        entities=[customer],
        ttl=timedelta(days=spec["ttl_days"]),
        schema=[Field(name="customer_id", dtype=Int64), *(Field(name=f, dtype=Float64) for f in FEATURES)],
        source=source,
        online=True,
    )
    return store, customer, view


def refs() -> list[str]:
    return [f"txn_stats:{f}" for f in FEATURES]


def op_historical(spec: dict, work: Path) -> dict:
    import pandas as pd

    store, customer, view = make_store(spec, work)
    store.apply([customer, view])
    entity_df = pd.read_parquet(spec["entities_path"])
    entity_df["row_id"] = range(len(entity_df))
    rss_before = rss_mib()
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=refs()).to_df()
    seconds = time.perf_counter() - t0
    peak = peak_mib()
    out = df[["row_id", "customer_id", *FEATURES]].sort_values("row_id")
    out.to_parquet(work / "values.parquet", index=False)
    return {"times": [seconds], "rows_in": len(entity_df), "rows_out": len(df),
            "rows_with_values": int(df[FEATURES].notna().all(axis=1).sum()),
            "rss_before_mib": rss_before, "peak_rss_mib_in_process": peak,
            "values_path": str(work / "values.parquet")}


def op_materialize(spec: dict, work: Path) -> dict:
    store, customer, view = make_store(spec, work)
    store.apply([customer, view])
    start = datetime.fromisoformat(spec["start"])
    end = datetime.fromisoformat(spec["end"])
    rss_before = rss_mib()
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    seconds = time.perf_counter() - t0
    return {"times": [seconds], "start": spec["start"], "end": spec["end"], "rss_before_mib": rss_before,
            "peak_rss_mib_in_process": peak_mib()}


def op_online(spec: dict, work: Path) -> dict:
    import numpy as np

    store, _, _ = make_store(spec, work)  # the folder `materialize` filled
    requests = json.loads(Path(spec["requests_path"]).read_text())
    features = refs()
    for ids in requests[:20]:  # warm-up (connections, registry cache)
        store.get_online_features(features=features, entity_rows=[{"customer_id": i} for i in ids]).to_dict()
    times, answers = [], []
    for ids in requests:
        rows = [{"customer_id": i} for i in ids]
        t0 = time.perf_counter()
        got = store.get_online_features(features=features, entity_rows=rows).to_dict()
        times.append(time.perf_counter() - t0)
        answers.append(got)
    values = np.array([[np.nan if v is None else v for v in (a[f][k] for f in FEATURES)]
                       for a, ids in zip(answers, requests) for k in range(len(ids))], dtype="float64")
    np.save(work / "online.npy", values)
    return {"request_seconds": times, "times": [sum(times)], "requests": len(requests),
            "batch": len(requests[0]) if requests else 0, "values_path": str(work / "online.npy"),
            "non_null": int(np.isfinite(values).all(axis=1).sum()), "peak_rss_mib_in_process": peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["historical", "materialize", "online"])
    parser.add_argument("--spec", required=True, help="spec.json written by features.py")
    parser.add_argument("--work", required=True, help="this side's folder (registry, online store, outputs)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--mem-gb", type=float, default=0, help="cap the address space (0: no cap)")
    args = parser.parse_args()

    if args.mem_gb > 0:
        cap = int(args.mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    warnings.filterwarnings("ignore")
    os.environ.setdefault("FEAST_USAGE", "False")
    spec = json.loads(Path(args.spec).read_text())
    work = Path(args.work)
    t0 = time.perf_counter()
    import feast

    import_seconds = time.perf_counter() - t0
    try:
        result = {"historical": op_historical, "materialize": op_materialize, "online": op_online}[
            args.operation](spec, work)
    except MemoryError as exc:
        import traceback

        traceback.print_exc()
        result = {"error": f"MemoryError: {exc}", "seconds_until_error": time.perf_counter() - t0,
                  "peak_rss_mib_in_process": peak_mib()}
        Path(args.out).write_text(json.dumps(result))
        print(f"MemoryError: {exc} (address space capped at {args.mem_gb:g} GiB)", file=sys.stderr)
        sys.exit(3)
    import pandas

    result.update(operation=args.operation, version=feast.__version__, pandas=pandas.__version__,
                  python=sys.version.split()[0], import_seconds=import_seconds,
                  finished=datetime.now(timezone.utc).isoformat())
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
