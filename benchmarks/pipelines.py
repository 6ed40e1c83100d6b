"""Pipelines: a no-op re-run of a 20-step pipeline (everything cached) must take under 0.5 s.

    PYTHONPATH=src python benchmarks/pipelines.py [--steps 20] [--repeat 5] [--uri sqlite:///…]

The first run executes every step on local worker processes; each re-run with nothing changed computes the
20 cache keys, finds every output in the store and records the run (pipeline run, 20 step rows, a tracked
parent run and 20 nested step runs) without starting a single worker. Reported: the first run, and the
median and worst of the re-runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import arsenale as ars

BUDGET_S = 0.5


@ars.step
def load(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows), "y": rng.normal(size=rows)})


@ars.step
def transform(frame: pd.DataFrame, k: int = 0) -> pd.DataFrame:
    return frame.assign(x=frame["x"] * (k + 1))


@ars.step
def reduce_all(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    return {"sum": float(a["x"].sum() + b["x"].sum())}


def make_pipeline(n_steps: int) -> ars.pipelines.Pipeline:
    """load → two chains of transforms → reduce: `n_steps` steps in all."""
    per_chain = (n_steps - 2) // 2

    @ars.pipeline(name=f"bench_{n_steps}")
    def bench():  # type: ignore[no-untyped-def]
        frame = load()
        left = right = frame
        for i in range(per_chain):
            left = transform(left, k=i)
        for i in range(n_steps - 2 - per_chain):
            right = transform(right, k=100 + i)
        return reduce_all(left, right)

    return bench


# Module level, so spawned workers can import the steps (they live in __main__ / __mp_main__).
PIPELINE = make_pipeline(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uri", default=None, help="metadata store (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ars-bench-pipelines-") as tmp:
        client = ars.Client(args.uri or f"sqlite:///{Path(tmp) / 'arsenale.db'}", artifacts=str(Path(tmp) / "a"))
        t0 = time.perf_counter()
        first = ars.run_pipeline(PIPELINE, "local", client=client)
        first_s = time.perf_counter() - t0
        assert first.status.value == "succeeded", first.report()
        n = len(first.steps)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            again = ars.run_pipeline(PIPELINE, "local", client=client)
            times.append(time.perf_counter() - t0)
            assert {s.status.value for s in again.steps} == {"cached"}, again.report()
        median, worst = statistics.median(times), max(times)
        print(f"pipeline of {n} steps: first run (executes all) {first_s:.2f} s")
        print(f"no-op re-run (all cached): median {median * 1000:.0f} ms, worst {worst * 1000:.0f} ms "
              f"over {args.repeat} (budget {BUDGET_S * 1000:.0f} ms)")
        ok = median < BUDGET_S
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
