"""Arsenale: the whole lifecycle of a machine-learning model, from raw data to a monitored endpoint.

    import arsenale as ars
    with ars.start_run(experiment="fraud", params={"C": 0.1}):
        ars.log_metric("loss", 0.3, step=1)
"""

from __future__ import annotations

# `typing` is not imported at run time (nor anywhere on the path of `arsenale data status`, which must
# answer in about 100 ms, process start included); type checkers treat TYPE_CHECKING as true.
TYPE_CHECKING = False
from arsenale.errors import (
    ArsenaleError,
    BackendUnavailable,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidFilter,
    InvalidInput,
    NotFound,
)

# Everything else is imported on first use (PEP 562), so that `import arsenale` — which every
# `arsenale …` command and `arsenale.data` pays — stays cheap: the SDK's modules pull in
# SQLAlchemy, pandas and scikit-learn. `from arsenale import X` and `ars.X` work as before.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Dataset", "register_dataset"), "arsenale.data.fluent"),
    **dict.fromkeys(("Entity", "FeatureService", "FeatureView", "on_demand_feature"),
                    "arsenale.features.definitions"),
    **dict.fromkeys(("FeatureStore",), "arsenale.features.store"),
    **dict.fromkeys(("pipeline", "run_pipeline", "step"), "arsenale.pipelines"),
    **dict.fromkeys(("project",), "arsenale.security.projects"),
    **dict.fromkeys(("Client",), "arsenale.platform"),
    **dict.fromkeys(("span", "trace"), "arsenale.llm.tracer"),
    **dict.fromkeys(("prompts",), "arsenale.llm.fluent"),
    **dict.fromkeys(("embedders",), "arsenale.llm"),
    **dict.fromkeys(("VectorIndex",), "arsenale.llm.vectors"),
    **dict.fromkeys(("load_model", "log_model", "register_model", "set_alias"), "arsenale.registry.fluent"),
    **dict.fromkeys(("ModelVersion", "RegisteredModel", "Stage"), "arsenale.registry.models"),
    **dict.fromkeys(("ActiveRun", "active_run", "end_run", "get_client", "log_artifact", "log_artifacts",
                     "log_dict", "log_figure", "log_metric", "log_metrics", "log_param", "log_params",
                     "log_text", "search_runs", "set_tag", "set_tags", "start_run"), "arsenale.tracking.fluent"),
    **dict.fromkeys(("Experiment", "Metric", "MetricHistory", "Run", "RunInfo", "RunStatus"),
                    "arsenale.tracking.models"),
}

if TYPE_CHECKING:
    from typing import Any

    from arsenale.data.fluent import Dataset, register_dataset
    from arsenale.features.definitions import Entity, FeatureService, FeatureView, on_demand_feature
    from arsenale.features.store import FeatureStore
    from arsenale.llm import embedders
    from arsenale.llm.fluent import prompts
    from arsenale.llm.tracer import span, trace
    from arsenale.llm.vectors import VectorIndex
    from arsenale.pipelines import pipeline, run_pipeline, step
    from arsenale.platform import Client
    from arsenale.registry.fluent import load_model, log_model, register_model, set_alias
    from arsenale.registry.models import ModelVersion, RegisteredModel, Stage
    from arsenale.security.projects import project
    from arsenale.tracking.fluent import (
        ActiveRun,
        active_run,
        end_run,
        get_client,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )
    from arsenale.tracking.models import Experiment, Metric, MetricHistory, Run, RunInfo, RunStatus

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "ArsenaleError",
    "BackendUnavailable",
    "Client",
    "Conflict",
    "Dataset",
    "Entity",
    "Experiment",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Forbidden",
    "IntegrityError",
    "InvalidFilter",
    "InvalidInput",
    "Metric",
    "MetricHistory",
    "ModelVersion",
    "NotFound",
    "RegisteredModel",
    "Run",
    "RunInfo",
    "RunStatus",
    "Stage",
    "VectorIndex",
    "__version__",
    "active_run",
    "embedders",
    "end_run",
    "get_client",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "on_demand_feature",
    "pipeline",
    "project",
    "prompts",
    "register_dataset",
    "register_model",
    "run_pipeline",
    "search_runs",
    "set_alias",
    "set_tag",
    "set_tags",
    "span",
    "start_run",
    "step",
    "trace",
]


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        try:  # a subpackage, e.g. `arsenale.tracking` after a bare `import arsenale`
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
