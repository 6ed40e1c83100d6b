"""Toy loaders for the worker-pool tests: each builds a predictor in a worker process, like the real loader.

Marker values in the first cell make a batch misbehave on purpose:
    -1  the worker process exits at once (os._exit), as a segfault or OOM kill would end it
    -2  the model raises ValueError (a model bug: the worker must survive it)
    -3  the model holds the batch for `hold_s` seconds (so a test can kill the worker mid-batch)
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from arsenale.serving.models import ModelRef

CRASH, RAISE, HOLD = -1.0, -2.0, -3.0


class ToyPredictor:
    """Multiplies the frame by version + 1 (version 1 doubles), and says which process answered."""

    def __init__(self, ref: ModelRef, sleep_s: float, hold_s: float) -> None:
        self.ref = ref
        self.sleep_s = sleep_s
        self.hold_s = hold_s

    def predict(self, frame: Any) -> dict[str, Any]:
        x = np.asarray(frame, dtype=float)
        marker = x.flat[0] if x.size else 0.0
        if marker == CRASH:
            os._exit(1)
        if marker == RAISE:
            raise ValueError("negative two is not a valid amount")
        if marker == HOLD:
            time.sleep(self.hold_s)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return {"predictions": x * (self.ref.version + 1), "pid": np.full(len(x), os.getpid())}


def load(ref: ModelRef, sleep_s: float = 0.0, hold_s: float = 2.0,
         broken_versions: tuple[int, ...] = ()) -> ToyPredictor:
    if ref.version in broken_versions:
        raise RuntimeError(f"version {ref.version} has a corrupt artifact")
    return ToyPredictor(ref, sleep_s, hold_s)


def _refuse_to_rebuild() -> None:
    raise ValueError("this frame cannot be rebuilt in a worker")


class Unreadable:
    """A frame that pickles in the server but fails to unpickle in the worker."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _refuse_to_rebuild, ()
