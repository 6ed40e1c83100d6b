"""Arsenale: the whole lifecycle of a machine-learning model, from raw data to a monitored endpoint.

    import arsenale as ars
    with ars.start_run(experiment="fraud", params={"C": 0.1}):
        ars.log_metric("loss", 0.3, step=1)
"""

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
from arsenale.platform import Client
from arsenale.registry.fluent import load_model, log_model, register_model, set_alias
from arsenale.registry.models import ModelVersion, RegisteredModel, Stage
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
    "Experiment",
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
    "active_run",
    "end_run",
    "get_client",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "load_model",
    "log_metrics",
    "log_param",
    "log_model",
    "log_params",
    "log_text",
    "register_model",
    "search_runs",
    "set_alias",
    "set_tag",
    "set_tags",
    "start_run",
    "__version__",
]
