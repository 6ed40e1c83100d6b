"""Arsenale half of benchmarks/features.py. Runs under the interpreter that has `arsenale`.

Not meant to be run by hand, but it can be (features.py writes the data and the spec):

    python benchmarks/_features_arsenale_side.py historical \
        --spec /tmp/x/data/spec.json --work /tmp/x/ars-hist --out /tmp/x/ars-hist/result.json

The store lives in --work: `ars.Client("sqlite:///<work>/arsenale.db", artifacts=<work>/artifacts)`
and `ars.FeatureStore(client=…, online="sqlite:///<work>/online.db")` (or --online URL, e.g.
redis://127.0.0.1:6379/14). Definitions, the same as _feast_side.py's: entity `customer`
(join key customer_id) and the FeatureView `txn_stats` over the events Parquet (timestamp
`event_time`, ttl 30d, features f1, f2, f3); `fs.apply([...])` happens before any timing.

Operations (the same work as _feast_side.py):

* historical  reads the entity rows (customer_id, event_timestamp) with pandas and times
              `fs.get_historical_features(entity_df, ["txn_stats:f1", …])` (every row, in the
              original order). Values go to <work>/values.parquet (customer_id, f1, f2, f3),
              untimed. `--views 3` instead defines txn_a, txn_b, txn_c over the same events,
              each with its own copies of f1..f3 (a_f1 = "f1", …) and one windowed aggregation
              (a_f1_sum_7d = "sum(f1) over 7d", b_f2_sum_7d, c_f3_sum_7d), and retrieves all 12.
* materialize times `fs.materialize(end=end)` (the first run: everything up to the end).
* online      (in the folder `materialize` left, with the same --online) times
              `fs.get_online_features([...], [{"customer_id": i}, …])` for each of the requests in
              spec["requests_path"], after 20 untimed warm-up requests; values go to
              <work>/online.npy.

Writes one JSON object to --out. If the feature-store API is missing or differs, exits with a
message saying what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

from _memory import peak_mib, rss_mib

FEATURES = ["f1", "f2", "f3"]


def need(what: str, exc: BaseException | None = None) -> None:
    detail = f" ({type(exc).__name__}: {exc})" if exc else ""
    if exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    # Last, so that it is the line features.py quotes.
    print(f"Arsenale's feature-store API is missing or differs: {what}{detail}", file=sys.stderr)
    sys.exit(2)


def api():
    try:
        import arsenale as ars
    except Exception as exc:  # noqa: BLE001 - report anything
        need("`import arsenale` failed", exc)
    missing = [n for n in ("Client", "FeatureStore", "Entity", "FeatureView") if not hasattr(ars, n)]
    if missing:
        need(f"arsenale has no {', '.join(missing)} (expected ars.FeatureStore(client=…, online=…), "
             f"ars.Entity, ars.FeatureView)")
    return ars


def make_store(ars, work: Path, online: str | None):
    work.mkdir(parents=True, exist_ok=True)
    try:
        client = ars.Client(f"sqlite:///{work}/arsenale.db", artifacts=f"{work}/artifacts")
    except Exception as exc:  # noqa: BLE001
        need('ars.Client("sqlite:///…/arsenale.db", artifacts=…)', exc)
    try:
        return ars.FeatureStore(client=client, online=online or f"sqlite:///{work}/online.db")
    except Exception as exc:  # noqa: BLE001
        need(f"ars.FeatureStore(client=client, online={online or 'sqlite:///…/online.db'!r})", exc)


def definitions(ars, spec: dict, views: int) -> tuple[list, list[str], list[str]]:
    """(objects to apply, feature refs, output columns)."""
    try:
        customer = ars.Entity("customer", join_keys=["customer_id"])
    except Exception as exc:  # noqa: BLE001
        need('ars.Entity("customer", join_keys=["customer_id"])', exc)
    common = dict(entities=[customer], source=spec["events_path"], timestamp="event_time",
                  ttl=f"{spec['ttl_days']}d")
    try:
        if views == 1:
            view = ars.FeatureView("txn_stats", features=list(FEATURES), **common)
            return [customer, view], [f"txn_stats:{f}" for f in FEATURES], list(FEATURES)
        objects, refs, columns = [customer], [], []
        for prefix, i in (("a", 1), ("b", 2), ("c", 3)):
            features = {f"{prefix}_{f}": f for f in FEATURES}
            features[f"{prefix}_f{i}_sum_7d"] = f"sum(f{i}) over {spec['window_days']}d"
            objects.append(ars.FeatureView(f"txn_{prefix}", features=features, **common))
            refs += [f"txn_{prefix}:{name}" for name in features]
            columns += list(features)
        return objects, refs, columns
    except Exception as exc:  # noqa: BLE001
        need('ars.FeatureView("txn_stats", entities=[customer], source="<events.parquet>", '
             'timestamp="event_time", ttl="30d", features=[…] or {name: expression})', exc)


def apply(fs, objects: list) -> None:
    try:
        fs.apply(objects)
    except Exception as exc:  # noqa: BLE001
        need("fs.apply([customer, view])", exc)


def materialize(fs, spec: dict):
    end = datetime.fromisoformat(spec["end"])
    try:
        return fs.materialize(end=end)
    except Exception as exc:  # noqa: BLE001
        need(f"fs.materialize(end={end!r})", exc)


def describe(results) -> object:
    """Whatever materialize returned, JSON-able (it is documented as a list of results)."""
    try:
        return [r if isinstance(r, (dict, str, int, float)) else
                (r.model_dump() if hasattr(r, "model_dump") else repr(r)) for r in results]
    except TypeError:
        return repr(results)


def op_historical(ars, spec: dict, work: Path, views: int) -> dict:
    import pandas as pd

    fs = make_store(ars, work, None)
    objects, refs, columns = definitions(ars, spec, views)
    apply(fs, objects)
    entity_df = pd.read_parquet(spec["entities_path"])
    rss_before = rss_mib()
    t0 = time.perf_counter()
    try:
        df = fs.get_historical_features(entity_df, refs)
    except Exception as exc:  # noqa: BLE001
        need(f"fs.get_historical_features(entity_df, {refs})", exc)
    seconds = time.perf_counter() - t0
    peak = peak_mib()
    missing = [c for c in ["customer_id", *columns] if c not in getattr(df, "columns", [])]
    if missing:
        got = list(getattr(df, "columns", []))
        need(f"get_historical_features returned no column(s) {missing}; got {got} "
             f"({type(df).__name__})")
    out = pd.DataFrame({c: df[c] for c in ["customer_id", *columns]})
    out.to_parquet(work / "values.parquet", index=False)
    return {"times": [seconds], "rows_in": len(entity_df), "rows_out": len(df), "views": views,
            "refs": refs, "result_type": type(df).__name__, "result_columns": [str(c) for c in df.columns],
            "rows_with_values": int(out[columns].notna().all(axis=1).sum()),
            "rss_before_mib": rss_before, "peak_rss_mib_in_process": peak,
            "values_path": str(work / "values.parquet")}


def op_materialize(ars, spec: dict, work: Path, online: str | None) -> dict:
    fs = make_store(ars, work, online)
    objects, _, _ = definitions(ars, spec, 1)
    apply(fs, objects)
    # Feast has pandas, pyarrow and its providers imported by the time `apply` returns; Arsenale imports its
    # engines (pandas and DuckDB among them) on first use. Import them here, so that both sides' timed
    # region is the materialization itself, not module loading.
    import arsenale.features.offline  # noqa: F401
    import arsenale.features.online  # noqa: F401
    rss_before = rss_mib()
    t0 = time.perf_counter()
    results = materialize(fs, spec)
    seconds = time.perf_counter() - t0
    return {"times": [seconds], "end": spec["end"], "results": describe(results),
            "rss_before_mib": rss_before,
            "peak_rss_mib_in_process": peak_mib()}


def op_online(ars, spec: dict, work: Path, online: str | None) -> dict:
    import numpy as np

    fs = make_store(ars, work, online)  # the folder `materialize` filled
    result: dict = {"online": online or "sqlite:///<work>/online.db"}
    requests = json.loads(Path(spec["requests_path"]).read_text())
    refs = [f"txn_stats:{f}" for f in FEATURES]

    def get(ids: list[int]) -> dict:
        return fs.get_online_features(refs, [{"customer_id": i} for i in ids])

    try:
        first = get(requests[0])
    except Exception as exc:  # noqa: BLE001
        need(f"fs.get_online_features({refs}, [{{'customer_id': …}}, …])", exc)
    if not isinstance(first, dict) or not all(f in first for f in FEATURES):
        need(f"get_online_features should return dict[str, list] with keys {FEATURES}; got "
             f"{type(first).__name__} {list(first)[:10] if isinstance(first, dict) else ''}")
    result["answer_keys"] = list(first)
    for ids in requests[:20]:  # warm-up
        get(ids)
    times, answers = [], []
    for ids in requests:
        rows = [{"customer_id": i} for i in ids]
        t0 = time.perf_counter()
        got = fs.get_online_features(refs, rows)
        times.append(time.perf_counter() - t0)
        answers.append(got)
    values = np.array([[np.nan if v is None else v for v in (a[f][k] for f in FEATURES)]
                       for a, ids in zip(answers, requests) for k in range(len(ids))], dtype="float64")
    np.save(work / "online.npy", values)
    result.update(request_seconds=times, times=[sum(times)], requests=len(requests),
                  batch=len(requests[0]) if requests else 0, values_path=str(work / "online.npy"),
                  non_null=int(np.isfinite(values).all(axis=1).sum()), peak_rss_mib_in_process=peak_mib())
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["historical", "materialize", "online"])
    parser.add_argument("--spec", required=True, help="spec.json written by features.py")
    parser.add_argument("--work", required=True, help="this side's folder (stores and outputs)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--views", type=int, choices=[1, 3], default=1, help="historical: 1 or 3 views")
    parser.add_argument("--online", default=None, help="online store URL (default SQLite in --work)")
    args = parser.parse_args()

    spec = json.loads(Path(args.spec).read_text())
    work = Path(args.work)
    t0 = time.perf_counter()
    ars = api()
    import_seconds = time.perf_counter() - t0
    if args.operation == "historical":
        result = op_historical(ars, spec, work, args.views)
    elif args.operation == "materialize":
        result = op_materialize(ars, spec, work, args.online)
    else:
        result = op_online(ars, spec, work, args.online)
    import pandas

    result.update(operation=args.operation, version=getattr(ars, "__version__", "unknown"),
                  pandas=pandas.__version__, python=sys.version.split()[0], import_seconds=import_seconds)
    Path(args.out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
