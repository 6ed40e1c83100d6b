"""Arsenale half of benchmarks/tracking.py. Runs under the interpreter that has `arsenale`.

Not meant to be run by hand, but it can be (the store comes from ARSENALE_URI /
ARSENALE_HOME, set by tracking.py):

    ARSENALE_HOME=/tmp/x/.arsenale python benchmarks/_arsenale_side.py log_metric \
        --n 100000 --repeat 3 --out /tmp/x/r.json

Operations: log_metric, log_batch, search_runs, metric_history — the same work
as _mlflow_side.py. Timed sections end when the data is durable: the fluent
run's end flushes its buffered points, and Client.tracking.log_batch returns
after its transaction commits (locally or on the server).
Writes one JSON object to --out: {"times": [seconds per repeat], "count": …, …}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import arsenale as ars


def now_ms() -> int:
    return int(time.time() * 1000)


def run_id_of(run: Any) -> str:
    """The id of whatever `ars.start_run` / `create_run` hands back."""
    info = getattr(run, "info", None)
    for obj, attr in ((info, "run_id"), (run, "run_id"), (run, "id")):
        value = getattr(obj, attr, None) if obj is not None else None
        if value:
            return str(value)
    raise SystemExit(f"cannot find a run id on {run!r}")


def experiment(client: Any, name: str) -> str:
    found = client.tracking.get_experiment_by_name(name)
    return (found or client.tracking.create_experiment(name)).experiment_id


def check_history(client: Any, run_id: str, n: int) -> None:
    history = client.tracking.get_metric_history(run_id, "loss")
    if len(history.steps) != n:
        raise SystemExit(f"expected {n} points, found {len(history.steps)}")


def op_log_metric(client: Any, n: int, repeat: int) -> dict:
    with ars.start_run(experiment="bench"):  # warm-up: store, experiment, buffer thread
        ars.log_metric("loss", 0.0, step=0)
    times, starts = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with ars.start_run(experiment="bench") as run:
            t1 = time.perf_counter()
            for i in range(n):
                ars.log_metric("loss", float(i), step=i)
        t2 = time.perf_counter()  # the run's end flushed the buffered points: all durable
        starts.append(t1 - t0)
        times.append(t2 - t1)
        check_history(client, run_id_of(run), n)
    return {"times": times, "count": n, "start_run_seconds": starts}


def op_log_batch(client: Any, n: int, repeat: int, chunk: int) -> dict:
    exp_id = experiment(client, "bench-batch")
    ts = now_ms()
    points = [("loss", float(i), i, ts + i) for i in range(n)]
    chunks = [points[s:s + chunk] for s in range(0, n, chunk)]
    warm = run_id_of(client.tracking.create_run(exp_id))
    client.tracking.log_batch(warm, metrics=points[:10])
    times = []
    for _ in range(repeat):
        run_id = run_id_of(client.tracking.create_run(exp_id))
        t0 = time.perf_counter()
        for part in chunks:
            client.tracking.log_batch(run_id, metrics=part)
        times.append(time.perf_counter() - t0)
        client.tracking.update_run(run_id, status="FINISHED", end_time=now_ms())
    return {"times": times, "count": n, "requests": len(chunks)}


def acc_of(i: int) -> float:
    """Same values as _mlflow_side.acc_of: about half the runs pass acc > 0.5."""
    return ((i * 7919) % 10007) / 10007


def op_search_runs(client: Any, n: int, repeat: int, page: int) -> dict:
    exp_id = experiment(client, "bench-search")
    t0 = time.perf_counter()
    ts = now_ms()
    for i in range(n):
        run_id = run_id_of(client.tracking.create_run(exp_id, start_time=ts))
        client.tracking.log_batch(run_id, metrics=[("acc", acc_of(i), 0, ts)], params={"C": str(i % 10)})
    setup = time.perf_counter() - t0
    expected = sum(1 for i in range(n) if acc_of(i) > 0.5)
    times, pages = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        found, token, pages = 0, None, 0
        while True:
            result = client.tracking.search_runs(
                experiment_ids=[exp_id], filter="metrics.acc > 0.5", order_by=None,
                max_results=page, page_token=token,
            )
            found += len(result.runs)
            pages += 1
            token = result.next_page_token
            if not token:
                break
        times.append(time.perf_counter() - t0)
        if found != expected:
            raise SystemExit(f"search found {found} runs, expected {expected}")
    return {"times": times, "count": expected, "runs": n, "pages": pages, "setup_seconds": setup}


def op_metric_history(client: Any, n: int, repeat: int) -> dict:
    exp_id = experiment(client, "bench-history")
    t0 = time.perf_counter()
    run_id = run_id_of(client.tracking.create_run(exp_id))
    ts = now_ms()
    client.tracking.log_batch(run_id, metrics=[("loss", float(i), i, ts + i) for i in range(n)])
    client.tracking.update_run(run_id, status="FINISHED", end_time=now_ms())
    setup = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        history = client.tracking.get_metric_history(run_id, "loss")
        times.append(time.perf_counter() - t0)
        got = len(history.steps)
        if got != n or len(history.values) != n or len(history.timestamps) != n:
            raise SystemExit(f"history has {got} points, expected {n}")
    return {"times": times, "count": n, "setup_seconds": setup}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["log_metric", "log_batch", "search_runs", "metric_history"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    client = ars.Client()
    if args.operation == "log_metric":
        result = op_log_metric(client, args.n, args.repeat)
    elif args.operation == "log_batch":
        result = op_log_batch(client, args.n, args.repeat, args.chunk)
    elif args.operation == "search_runs":
        result = op_search_runs(client, args.n, args.repeat, args.page)
    else:
        result = op_metric_history(client, args.n, args.repeat)
    version = getattr(ars, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("arsenale")
        except Exception:
            version = "unknown"
    result.update(operation=args.operation, uri=getattr(client, "uri", None), version=version,
                  python=sys.version.split()[0])
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
