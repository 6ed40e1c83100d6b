"""Where model calls run: the seam between the HTTP front and the models.

The front (parsing, validation, routing, batching, logging) always runs in the server's event loop.
A batch of rows then goes to an `Executor`: in-process for the lowest latency, or a pool of model
worker processes (`arsenale.serving.workers.WorkerPool`) for CPU-bound models, where a crashed worker
costs its in-flight requests a 503 with Retry-After and is replaced.

Their failures are `arsenale.errors.ModelFailed` (500) and `WorkerCrashed` (503). A `Predictor` is a loaded
model version; `load_predictor` is the one function that turns a registry
reference into one, in the server process or in a worker.
"""

from __future__ import annotations

from typing import Any, Protocol

from arsenale.serving.models import ModelRef


class Predictor(Protocol):
    ref: ModelRef

    def predict(self, frame: Any) -> dict[str, Any]:
        """Outputs for a batch, keyed by name ("predictions", optionally "probabilities"), one row per input row."""
        ...


class Executor(Protocol):
    async def load(self, refs: list[ModelRef]) -> None:
        """Make these versions ready to predict (idempotent); raises if one cannot be loaded."""
        ...

    def unload(self, keys: list[str]) -> None:
        """Forget versions (by `ModelRef.key`) no route or shadow uses any more."""
        ...

    async def predict(self, key: str, frame: Any) -> dict[str, Any]:
        """Run one batch through one loaded version; raises ModelFailed or WorkerCrashed."""
        ...

    @property
    def in_flight(self) -> int:
        """Batches accepted and not yet answered (queued or computing): the load the autoscaler reads."""
        ...

    async def close(self) -> None: ...
