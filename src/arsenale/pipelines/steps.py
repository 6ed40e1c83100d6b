"""`@step` and `@pipeline`: decorators that only record metadata.

    @ars.step
    def featurize(raw: pd.DataFrame) -> pd.DataFrame: ...

    @ars.step(retries=2, timeout=600)
    def train(features: pd.DataFrame, C: float = 1.0) -> object: ...

    @ars.pipeline
    def fraud_training(raw=...):
        return train(featurize(raw))

A step called outside a pipeline definition is the plain function. Called while `graph.build` traces a
pipeline, it returns a `NodeHandle` instead of running: the engine (`runner.py`) runs it later, in a worker.

A step's arguments without a default are its *inputs* (data from other steps or the pipeline's arguments);
those with a default are its *params*. Workers import a step by `module:qualname`, so steps live at module
level in an importable module.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from arsenale.errors import InvalidInput

__all__ = ["NodeHandle", "Pipeline", "Step", "pipeline", "step"]

Serializer = Literal["safe", "trusted-pickle"]
SERIALIZERS = ("safe", "trusted-pickle")

# The tracer of the pipeline definition being traced in this thread or task, if any (set by graph.build).
TRACER: contextvars.ContextVar[Any] = contextvars.ContextVar("arsenale_pipeline_tracer", default=None)


@dataclass(frozen=True)
class NodeHandle:
    """What a step call returns inside a pipeline definition: a reference to the step's future output."""

    node: str
    tracer_id: int = field(repr=False, compare=False)

    def __bool__(self) -> bool:
        raise InvalidInput(f"the output of step {self.node!r} has no value while the pipeline is being defined; "
                           "branch inside a step, not in the pipeline function", field="pipeline")

    def __iter__(self) -> Any:
        raise InvalidInput(f"the output of step {self.node!r} cannot be unpacked in a pipeline definition; "
                           "return one value per step", field="pipeline")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise InvalidInput(f"the output of step {self.node!r} has no attribute {name!r} while the pipeline is "
                           "being defined; pass it to another step instead", field="pipeline")


@dataclass(frozen=True)
class InputHandle:
    """A pipeline argument while the definition is traced; its value is given at run time."""

    name: str
    tracer_id: int = field(repr=False, compare=False)

    def __bool__(self) -> bool:
        raise InvalidInput(f"pipeline argument {self.name!r} has no value while the pipeline is being defined; "
                           "pass it to a step", field="pipeline")


class Step:
    """A function plus how to run it: retries, backoff, timeout, caching and output serializer."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None, retries: int = 0,
                 backoff: float = 1.0, timeout: float | None = None, cache: bool = True,
                 serializer: Serializer = "safe") -> None:
        if not callable(func):
            raise InvalidInput("@step decorates a function", field="step")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInput(f"retries must be a non-negative integer, got {retries!r}", field="retries")
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
            raise InvalidInput(f"backoff must be a non-negative number of seconds, got {backoff!r}",
                               field="backoff")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}", field="timeout")
        if serializer not in SERIALIZERS:
            raise InvalidInput(f"serializer must be one of {', '.join(SERIALIZERS)}, got {serializer!r}",
                               field="serializer")
        self.func = func
        self.name = name or func.__name__
        self.retries = retries
        self.backoff = float(backoff)
        self.timeout = None if timeout is None else float(timeout)
        self.cache = bool(cache)
        self.serializer: Serializer = serializer
        self.module = func.__module__
        self.qualname = func.__qualname__
        self.signature = inspect.signature(func)
        self.params = {n: p.default for n, p in self.signature.parameters.items()
                       if p.default is not inspect.Parameter.empty}
        self.inputs = [n for n, p in self.signature.parameters.items() if p.default is inspect.Parameter.empty]
        functools.update_wrapper(self, func)

    @property
    def ref(self) -> str:
        """`module:qualname`, how a worker process imports this step."""
        return f"{self.module}:{self.qualname}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = TRACER.get()
        if tracer is None:
            return self.func(*args, **kwargs)
        return tracer.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.ref})>"


class Pipeline:
    """A function whose body wires steps together; traced into a `graph.Graph`, never run directly."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None) -> None:
        if not callable(func):
            raise InvalidInput("@pipeline decorates a function", field="pipeline")
        self.func = func
        self.name = name or func.__name__
        self.module = func.__module__
        self.qualname = func.__qualname__
        self.signature = inspect.signature(func)
        functools.update_wrapper(self, func)

    @property
    def ref(self) -> str:
        return f"{self.module}:{self.qualname}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if TRACER.get() is not None:  # a pipeline used inside another: inline its steps
            return self.func(*args, **kwargs)
        raise InvalidInput(f"pipeline {self.name!r} is run with ars.run_pipeline({self.name}, ...), "
                           "not called", field="pipeline")

    def __repr__(self) -> str:
        return f"<pipeline {self.name} ({self.ref})>"


@overload
def step(func: Callable[..., Any], /) -> Step: ...
@overload
def step(*, name: str | None = None, retries: int = 0, backoff: float = 1.0, timeout: float | None = None,
         cache: bool = True, serializer: Serializer = "safe") -> Callable[[Callable[..., Any]], Step]: ...


def step(func: Callable[..., Any] | None = None, /, *, name: str | None = None, retries: int = 0,
         backoff: float = 1.0, timeout: float | None = None, cache: bool = True,
         serializer: Serializer = "safe") -> Any:
    """Mark a function as a pipeline step. `retries` extra attempts wait `backoff * 2**(attempt - 1)` s;
    `timeout` (s) kills the attempt; `serializer="trusted-pickle"` allows pickling outputs no safe format
    fits (and loading them back)."""
    def wrap(f: Callable[..., Any]) -> Step:
        return Step(f, name=name, retries=retries, backoff=backoff, timeout=timeout, cache=cache,
                    serializer=serializer)

    return wrap(func) if func is not None else wrap


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(func: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a pipeline definition: its arguments are the pipeline's inputs, its body calls steps."""
    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name=name)

    return wrap(func) if func is not None else wrap
