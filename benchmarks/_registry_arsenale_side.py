"""Arsenale half of benchmarks/registry.py. Runs under the interpreter that has `arsenale`.

Not meant to be run by hand, but it can be (the store comes from ARSENALE_HOME, set by
registry.py):

    ARSENALE_HOME=/tmp/x/.arsenale python benchmarks/_registry_arsenale_side.py register_load \
        --model rf --n 10 --repeat 3 --out /tmp/x/r.json

Operations (the same work as _registry_mlflow_side.py):

* register_load  n iterations per repeat. Each iteration fits a fresh, distinct model
                 (untimed; same seeds as the MLflow side), starts a run (timed apart), then
                 times `register_model("bench", model, signature_from=X, reference=X, labels=y)`
                 (flavor save + contract/profile inference + upload + version row) and
                 `load_model("models:/bench/<v>")` (resolve + download + digest check + load),
                 checks the loaded model predicts like the original, and ends the run (timed
                 apart). One untimed warm-up registration + load (under another name) first.
* alias          registers one model, sets alias `champion`, then times n calls of
                 `Client().registry.resolve("models:/bench@champion")` per repeat.

Writes one JSON object to --out: {"times": [seconds per repeat], "count": …, …}; for
register_load, `times` holds each repeat's median seconds per iteration (register + load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import arsenale as ars
from arsenale.errors import InvalidInput
from arsenale.registry.fluent import load_model, log_model, register_model, set_alias


class Registrar:
    """`register_model(name, model, signature_from=X, reference=X, labels=y)` inside the active run.

    path "direct" is that call. "logged" is `log_model(model, "model", …)` then
    `register_model(name, "runs:/<run>/model")` — the same work (flavor save, contract and
    profile inference, upload, version row linked to the run) by the other documented route.
    "auto" tries direct and, if it fails, says why and falls back to logged for the whole
    measurement (recorded in the result as `path` and `direct_error`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.direct_error: str | None = None

    def __call__(self, name: str, model: Any, X: Any, y: Any) -> Any:
        if self.path in ("direct", "auto"):
            try:
                mv = register_model(name, model, signature_from=X, reference=X, labels=y)
                self.path = "direct"
                return mv
            except InvalidInput as exc:
                if self.path == "direct":
                    raise
                self.direct_error = f"{type(exc).__name__}: {exc}"
                print(f"direct register_model failed ({self.direct_error}); measuring "
                      f"log_model + register_model(runs:/) instead", file=sys.stderr)
                self.path = "logged"
        uri = log_model(model, "model", signature_from=X, reference=X, labels=y)
        return register_model(name, uri)


def make_model(kind: str, seed: int, X: Any, y: Any) -> Any:
    """A fitted model, distinct for every seed (so no two registrations share bytes)."""
    if kind == "rf":
        model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    else:
        model = LogisticRegression(C=0.5 + 0.01 * seed, max_iter=10_000)
    return model.fit(X, y)


def check_loaded(loaded: Any, model: Any, X: Any) -> None:
    if not np.array_equal(np.asarray(loaded.predict(X)), model.predict(X)):
        raise SystemExit("the loaded model does not predict like the registered one")


def op_register_load(kind: str, n: int, repeat: int, register: Registrar) -> dict:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    warm = make_model(kind, 0, X, y)
    t0 = time.perf_counter()
    with ars.start_run(experiment="bench"):
        mv = register("warmup", warm, X, y)
        load_model(f"models:/warmup/{mv.version}")
    cold = time.perf_counter() - t0

    times: list[float] = []
    per_repeat: list[dict[str, list[float]]] = []
    seed = 1
    for _ in range(repeat):
        parts: dict[str, list[float]] = {"register": [], "load": [], "total": [], "start_run": [], "end_run": []}
        for _ in range(n):
            model = make_model(kind, seed, X, y)
            seed += 1
            t0 = time.perf_counter()
            ars.start_run(experiment="bench")
            t1 = time.perf_counter()
            mv = register("bench", model, X, y)
            t2 = time.perf_counter()
            loaded = load_model(f"models:/bench/{mv.version}")
            t3 = time.perf_counter()
            ars.end_run()
            t4 = time.perf_counter()
            check_loaded(loaded, model, X)
            parts["start_run"].append(t1 - t0)
            parts["register"].append(t2 - t1)
            parts["load"].append(t3 - t2)
            parts["total"].append(t3 - t1)
            parts["end_run"].append(t4 - t3)
        per_repeat.append(parts)
        times.append(statistics.median(parts["total"]))
    last = ars.Client().registry.get_version("bench", mv.version)
    medians = {k: statistics.median(statistics.median(p[k]) for p in per_repeat) for k in per_repeat[0]}
    return {"times": times, "count": n, "model": kind, "part_medians": medians, "per_repeat": per_repeat,
            "cold_first_seconds": cold, "versions": mv.version, "flavor": last.flavor,
            "files": [{"path": f.path, "size": f.size} for f in last.files],
            "contract_keys": sorted(last.contract), "run_id": last.run_id,
            "path": {"direct": "register_model(name, model, …)",
                     "logged": "log_model(model, …) + register_model(name, runs:/…)"}[register.path],
            "direct_error": register.direct_error}


def op_alias(n: int, repeat: int, register: Registrar) -> dict:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    model = make_model("lr", 1, X, y)
    with ars.start_run(experiment="bench"):
        mv = register("bench", model, X, y)
    set_alias("bench", "champion", mv.version)
    client = ars.Client()
    uri = "models:/bench@champion"
    for _ in range(20):  # warm-up
        client.registry.resolve(uri)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            got = client.registry.resolve(uri)
        times.append(time.perf_counter() - t0)
        if got.version != mv.version:
            raise SystemExit(f"alias resolved to {got.version}, expected {mv.version}")
    return {"times": times, "count": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=["register_load", "alias"])
    parser.add_argument("--model", choices=["rf", "lr"], default="rf")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", default="default", help="ignored (the MLflow side has variants)")
    parser.add_argument("--path", choices=["auto", "direct", "logged"], default="auto",
                        help="how to register inside the run (see Registrar)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.operation == "register_load":
        result = op_register_load(args.model, args.n, args.repeat, Registrar(args.path))
    else:
        result = op_alias(args.n, args.repeat, Registrar(args.path))
    version = getattr(ars, "__version__", "unknown")
    import sklearn

    result.update(operation=args.operation, version=version, sklearn=sklearn.__version__,
                  python=sys.version.split()[0], uri=getattr(ars.Client(), "uri", None))
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
