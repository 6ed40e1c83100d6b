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
    "NotFound",
    "Run",
    "RunInfo",
    "RunStatus",
    "active_run",
    "end_run",
    "get_client",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "__version__",
]
