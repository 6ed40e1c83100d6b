"""MLflow half of benchmarks/tracking.py. Runs inside benchmarks/.venv-mlflow.

Not meant to be run by hand, but it can be:

    benchmarks/.venv-mlflow/bin/python benchmarks/_mlflow_side.py log_metric \
        --uri sqlite:////tmp/x/mlflow.db --n 2000 --repeat 3 --out /tmp/x/r.json

Operations: log_metric, log_batch, search_runs, metric_history.
Every timed section starts after the store exists (migrations run) and ends
when the data is committed: MLflow's SQL store commits on every call, and its
REST client returns after the server has committed.
Writes one JSON object to --out: {"times": [seconds per repeat], "count": …, …}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402

BATCH_LIMIT = 1000  # MLflow's maximum metrics per log_batch request


def now_ms() -> int:
    return int(time.time() * 1000)


def experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def op_log_metric(client: MlflowClient, n: int, repeat: int) -> dict:
    exp_id = experiment(client, "bench")
    with mlflow.start_run(experiment_id=exp_id):  # warm-up: first run, first metric
        mlflow.log_metric("loss", 0.0, step=0)
    times, starts = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with mlflow.start_run(experiment_id=exp_id) as run:
            t1 = time.perf_counter()
            for i in range(n):
                mlflow.log_metric("loss", float(i), step=i)
        t2 = time.perf_counter()
        starts.append(t1 - t0)
        times.append(t2 - t1)  # first call until the run has ended: every point durable
        stored = len(client.get_metric_history(run.info.run_id, "loss"))
        if stored != n:
            raise SystemExit(f"expected {n} points, found {stored}")
    return {"times": times, "count": n, "start_run_seconds": starts}


def op_log_batch(client: MlflowClient, n: int, repeat: int) -> dict:
    exp_id = experiment(client, "bench-batch")
    ts = now_ms()
    chunks = [
        [Metric("loss", float(i), ts + i, i) for i in range(start, min(start + BATCH_LIMIT, n))]
        for start in range(0, n, BATCH_LIMIT)
    ]
    warm = client.create_run(exp_id)
    client.log_batch(warm.info.run_id, metrics=chunks[0][:10])
    times = []
    for _ in range(repeat):
        run_id = client.create_run(exp_id).info.run_id
        t0 = time.perf_counter()
        for chunk in chunks:
            client.log_batch(run_id, metrics=chunk)
        times.append(time.perf_counter() - t0)
        client.set_terminated(run_id)
    return {"times": times, "count": n, "requests": len(chunks)}


def acc_of(i: int) -> float:
    """Deterministic, evenly spread in [0, 1): about half the runs pass acc > 0.5."""
    return ((i * 7919) % 10007) / 10007


def op_search_runs(client: MlflowClient, n: int, repeat: int, page: int) -> dict:
    exp_id = experiment(client, "bench-search")
    t0 = time.perf_counter()
    ts = now_ms()
    for i in range(n):
        run_id = client.create_run(exp_id, start_time=ts).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("acc", acc_of(i), ts, 0)],
            params=[Param("C", str(i % 10))],
        )
    setup = time.perf_counter() - t0
    expected = sum(1 for i in range(n) if acc_of(i) > 0.5)
    times, pages = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        found, token, pages = 0, None, 0
        while True:
            result = client.search_runs(
                experiment_ids=[exp_id],
                filter_string="metrics.acc > 0.5",
                max_results=page,
                page_token=token,
            )
            found += len(result)
            pages += 1
            token = result.token
            if not token:
                break
        times.append(time.perf_counter() - t0)
        if found != expected:
            raise SystemExit(f"search found {found} runs, expected {expected}")
    return {"times": times, "count": expected, "runs": n, "pages": pages, "setup_seconds": setup}


def op_metric_history(client: MlflowClient, n: int, repeat: int) -> dict:
    exp_id = experiment(client, "bench-history")
    t0 = time.perf_counter()
    run_id = client.create_run(exp_id).info.run_id
    ts = now_ms()
    for start in range(0, n, BATCH_LIMIT):
        client.log_batch(
            run_id,
            metrics=[Metric("loss", float(i), ts + i, i) for i in range(start, min(start + BATCH_LIMIT, n))],
        )
    client.set_terminated(run_id)
    setup = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        history = client.get_metric_history(run_id, "loss")
        times.append(time.perf_counter() - t0)
        if len(history) != n:
            raise SystemExit(f"history has {len(history)} points, expected {n}")
    return {"times": times, "count": n, "setup_seconds": setup}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["log_metric", "log_batch", "search_runs", "metric_history"])
    parser.add_argument("--uri", required=True, help="sqlite:///… or http://…")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.uri)
    client = MlflowClient(tracking_uri=args.uri)
    if args.operation == "log_metric":
        result = op_log_metric(client, args.n, args.repeat)
    elif args.operation == "log_batch":
        result = op_log_batch(client, args.n, args.repeat)
    elif args.operation == "search_runs":
        result = op_search_runs(client, args.n, args.repeat, args.page)
    else:
        result = op_metric_history(client, args.n, args.repeat)
    result.update(operation=args.operation, uri=args.uri, version=mlflow.__version__, python=sys.version.split()[0])
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
