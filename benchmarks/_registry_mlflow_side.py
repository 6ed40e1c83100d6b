"""MLflow half of benchmarks/registry.py. Runs inside benchmarks/.venv-mlflow.

Not meant to be run by hand, but it can be:

    benchmarks/.venv-mlflow/bin/python benchmarks/_registry_mlflow_side.py register_load \
        --model rf --uri sqlite:////tmp/x/mlflow.db --n 10 --repeat 3 --out /tmp/x/r.json

Operations (the same work as _registry_arsenale_side.py):

* register_load  n iterations per repeat. Each iteration fits a fresh, distinct model
                 (untimed; same seeds as the Arsenale side), starts a run (timed apart), then
                 times `mlflow.sklearn.log_model(model, name="model")`,
                 `mlflow.register_model(f"runs:/{run_id}/model", "bench")` and
                 `mlflow.pyfunc.load_model(f"models:/bench/{v}")`, checks the loaded model
                 predicts like the original, and ends the run (timed apart). One untimed
                 warm-up iteration (under another name) first.
                 --variant default: log_model with MLflow's defaults (which infer pip
                 requirements by loading the model in a subprocess); for the random forest
                 plus skops_trusted_types=["sklearn.tree._tree.Tree"], without which MLflow 3
                 refuses to log it (it saves with skops and checks the file's types).
                 --variant lean: log_model(..., pip_requirements=[scikit-learn==<version>]),
                 which skips that inference — MLflow's cheapest documented way to log.
* alias          registers one model, sets alias `champion`, then times n calls of
                 `MlflowClient().get_model_version_by_alias("bench", "champion")` per repeat.

Writes one JSON object to --out: {"times": [seconds per repeat], "count": …, …}; for
register_load, `times` holds each repeat's median seconds per iteration (log + register + load).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")  # e.g. "model logged without a signature": printed per call, not work
logging.getLogger("mlflow").setLevel(logging.ERROR)


def make_model(kind: str, seed: int, X: Any, y: Any) -> Any:
    """Same models as _registry_arsenale_side.make_model."""
    if kind == "rf":
        model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    else:
        model = LogisticRegression(C=0.5 + 0.01 * seed, max_iter=10_000)
    return model.fit(X, y)


def check_loaded(loaded: Any, model: Any, X: Any) -> None:
    if not np.array_equal(np.asarray(loaded.predict(X)), model.predict(X)):
        raise SystemExit("the loaded model does not predict like the registered one")


# MLflow 3 saves scikit-learn models with skops and, at save time, loads the file back to check
# its types; a random forest's tree type is not trusted by default, so log_model refuses it
# unless told to trust it (and the load then trusts the same list).
TRUSTED = {"rf": ["sklearn.tree._tree.Tree"], "lr": []}


def log_kwargs(variant: str, kind: str) -> dict:
    kwargs: dict = {"skops_trusted_types": TRUSTED[kind]} if TRUSTED[kind] else {}
    if variant == "lean":
        kwargs["pip_requirements"] = [f"scikit-learn=={sklearn.__version__}"]
    return kwargs


def op_register_load(kind: str, n: int, repeat: int, variant: str) -> dict:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    kwargs = log_kwargs(variant, kind)
    mlflow.set_experiment("bench")
    warm = make_model(kind, 0, X, y)
    t0 = time.perf_counter()
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(warm, name="model", **kwargs)
        mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "warmup")
        mlflow.pyfunc.load_model(f"models:/warmup/{mv.version}")
    cold = time.perf_counter() - t0

    times: list[float] = []
    per_repeat: list[dict[str, list[float]]] = []
    seed = 1
    for _ in range(repeat):
        parts: dict[str, list[float]] = {"log_model": [], "register": [], "load": [], "total": [],
                                         "start_run": [], "end_run": []}
        for _ in range(n):
            model = make_model(kind, seed, X, y)
            seed += 1
            t0 = time.perf_counter()
            run = mlflow.start_run()
            t1 = time.perf_counter()
            mlflow.sklearn.log_model(model, name="model", **kwargs)
            t2 = time.perf_counter()
            mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "bench")
            t3 = time.perf_counter()
            loaded = mlflow.pyfunc.load_model(f"models:/bench/{mv.version}")
            t4 = time.perf_counter()
            mlflow.end_run()
            t5 = time.perf_counter()
            check_loaded(loaded, model, X)
            parts["start_run"].append(t1 - t0)
            parts["log_model"].append(t2 - t1)
            parts["register"].append(t3 - t2)
            parts["load"].append(t4 - t3)
            parts["total"].append(t4 - t1)
            parts["end_run"].append(t5 - t4)
        per_repeat.append(parts)
        times.append(statistics.median(parts["total"]))
    medians = {k: statistics.median(statistics.median(p[k]) for p in per_repeat) for k in per_repeat[0]}
    # What the last version stored, for the record.
    local = mlflow.artifacts.download_artifacts(f"models:/bench/{mv.version}")
    files = []
    for root, _, names in os.walk(local):
        for name in names:
            path = os.path.join(root, name)
            files.append({"path": os.path.relpath(path, local), "size": os.path.getsize(path)})
    return {"times": times, "count": n, "model": kind, "variant": variant, "log_model_kwargs": kwargs,
            "part_medians": medians, "per_repeat": per_repeat, "cold_first_seconds": cold,
            "versions": int(mv.version), "files": sorted(files, key=lambda f: f["path"])}


def op_alias(n: int, repeat: int) -> dict:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    model = make_model("lr", 1, X, y)
    mlflow.set_experiment("bench")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", **log_kwargs("lean", "lr"))
        mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "bench")
    client = MlflowClient()
    client.set_registered_model_alias("bench", "champion", mv.version)
    for _ in range(20):  # warm-up
        client.get_model_version_by_alias("bench", "champion")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            got = client.get_model_version_by_alias("bench", "champion")
        times.append(time.perf_counter() - t0)
        if str(got.version) != str(mv.version):
            raise SystemExit(f"alias resolved to {got.version}, expected {mv.version}")
    return {"times": times, "count": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["register_load", "alias"])
    parser.add_argument("--uri", required=True, help="sqlite:///…")
    parser.add_argument("--model", choices=["rf", "lr"], default="rf")
    parser.add_argument("--variant", choices=["default", "lean"], default="default")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.uri)
    mlflow.set_registry_uri(args.uri)
    if args.operation == "register_load":
        result = op_register_load(args.model, args.n, args.repeat, args.variant)
    else:
        result = op_alias(args.n, args.repeat)
    result.update(operation=args.operation, uri=args.uri, version=mlflow.__version__,
                  sklearn=sklearn.__version__, python=sys.version.split()[0])
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
