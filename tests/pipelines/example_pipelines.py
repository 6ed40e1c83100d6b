"""Pipelines the tests run. Module level, so spawned workers and Ray workers can import the steps.

Steps that should be observable append a line to the file named by ARS_TEST_MARKS (step, pid, start, end),
which is how the tests see what executed, in which process, and when.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import arsenale as ars


def mark(name: str, start: float) -> None:
    path = os.environ.get("ARS_TEST_MARKS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"step": name, "pid": os.getpid(), "start": start, "end": time.time()}) + "\n")


def marks(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- fraud: the example ---------------------------------------------------------------------------


def raw_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, n)
    hour = rng.integers(0, 24, n)
    fraud = ((amount > 150) & ((hour < 6) | (hour > 22))).astype(int)
    fraud[:10] = 1  # both classes, always
    return pd.DataFrame({"amount": amount, "hour": hour, "fraud": fraud})


@ars.step
def featurize(raw: pd.DataFrame) -> pd.DataFrame:
    t = time.time()
    out = pd.DataFrame({"log_amount": np.log1p(raw["amount"]), "night": ((raw["hour"] < 6) | (raw["hour"] > 22))
                        .astype(float), "fraud": raw["fraud"]})
    mark("featurize", t)
    return out


@ars.step(retries=2, timeout=600)
def train(features: pd.DataFrame, C: float = 1.0) -> object:
    from sklearn.linear_model import LogisticRegression

    t = time.time()
    model = LogisticRegression(C=C, max_iter=500).fit(features[["log_amount", "night"]], features["fraud"])
    mark("train", t)
    return model


@ars.step
def evaluate(model: object, features: pd.DataFrame) -> dict:
    t = time.time()
    acc = float(model.score(features[["log_amount", "night"]], features["fraud"]))  # type: ignore[attr-defined]
    mark("evaluate", t)
    return {"accuracy": acc, "rows": len(features)}


@ars.step
def summarize(raw: pd.DataFrame) -> np.ndarray:
    t = time.time()
    out = raw[["amount", "hour"]].describe().to_numpy()
    mark("summarize", t)
    return out


@ars.pipeline
def fraud_training(raw=..., C: float = 1.0):  # type: ignore[no-untyped-def]
    features = featurize(raw)
    model = train(features, C=C)
    summarize(raw)
    return evaluate(model, features)


# ---- parallel branches ------------------------------------------------------------------------------------


@ars.step
def source(n: int = 5) -> list:
    t = time.time()
    mark("source", t)
    return list(range(n))


@ars.step
def slow_sum(values: list, delay: float = 1.0) -> int:
    t = time.time()
    time.sleep(delay)
    mark("slow_sum", t)
    return sum(values)


@ars.step
def slow_max(values: list, delay: float = 1.0) -> int:
    t = time.time()
    time.sleep(delay)
    mark("slow_max", t)
    return max(values)


@ars.step
def combine(total: int, biggest: int) -> dict:
    t = time.time()
    mark("combine", t)
    return {"total": total, "max": biggest}


@ars.pipeline
def diamond(n: int = 5, delay: float = 1.0):  # type: ignore[no-untyped-def]
    values = source(n=n)
    return combine(slow_sum(values, delay=delay), slow_max(values, delay=delay))


# ---- failures -------------------------------------------------------------------------------------------


@ars.step
def boom(values: list) -> int:
    t = time.time()
    mark("boom", t)
    raise ValueError("the boom step always fails")


@ars.step
def after_boom(x: int) -> int:
    mark("after_boom", time.time())
    return x + 1


@ars.step
def side(values: list) -> int:
    mark("side", time.time())
    return len(values)


@ars.pipeline
def failing(n: int = 3):  # type: ignore[no-untyped-def]
    values = source(n=n)
    side(values)
    return after_boom(boom(values))


@ars.step(retries=2, backoff=0.2)
def flaky(state_dir: str, fail_times: int = 2) -> str:
    """Fails `fail_times` times (counted in a file under state_dir), then succeeds."""
    counter = Path(state_dir) / "attempts"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    with open(Path(state_dir) / "times", "a") as f:
        f.write(f"{time.time()}\n")
    if n <= fail_times:
        raise RuntimeError(f"flaky failure {n}")
    return f"ok after {n}"


@ars.pipeline
def flaky_pipeline(state_dir: str = "", fail_times: int = 2):  # type: ignore[no-untyped-def]
    return flaky(state_dir, fail_times=fail_times)


@ars.step(timeout=1.5)
def sleepy(pid_file: str, seconds: float = 60.0) -> str:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke up"


@ars.pipeline
def sleepy_pipeline(pid_file: str = "", seconds: float = 60.0):  # type: ignore[no-untyped-def]
    return sleepy(pid_file, seconds=seconds)


# ---- serialization ---------------------------------------------------------------------------------------


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


@ars.step
def make_opaque(n: int = 1) -> Opaque:
    return Opaque(n)


@ars.step(serializer="trusted-pickle")
def make_trusted_opaque(n: int = 1) -> Opaque:
    return Opaque(n)


@ars.step(serializer="trusted-pickle")
def read_opaque(o: Opaque) -> int:
    return o.value * 10


@ars.pipeline
def unsafe_output(n: int = 1):  # type: ignore[no-untyped-def]
    return make_opaque(n=n)


@ars.pipeline
def trusted_output(n: int = 1):  # type: ignore[no-untyped-def]
    return read_opaque(make_trusted_opaque(n=n))


# ---- a wide pipeline ---------------------------------------------------------------------------------------


@ars.step
def chunk(values: list, i: int = 0) -> list:
    return [v * (i + 1) for v in values]


@ars.step
def total(a: list, b: list) -> int:
    return sum(a) + sum(b)


@ars.pipeline
def scheduled(n: int = 3):  # type: ignore[no-untyped-def]
    values = source(n=n)
    return total(chunk(values, i=1), chunk(values, i=2))
