"""The public surface of `import arsenale as ars` is deliberate: adding or removing a name is a decision."""

import arsenale as ars

EXPECTED = {
    "ActiveRun", "ArsenaleError", "BackendUnavailable", "Client", "Conflict", "Dataset", "Experiment",
    "Forbidden", "IntegrityError", "InvalidFilter", "InvalidInput", "Metric", "MetricHistory", "ModelVersion",
    "NotFound", "RegisteredModel", "Run", "RunInfo", "RunStatus", "Stage", "active_run", "end_run", "get_client",
    "load_model", "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_metric", "log_metrics",
    "log_model", "log_param", "log_params", "log_text", "register_dataset", "register_model", "search_runs",
    "set_alias", "set_tag", "set_tags", "start_run", "__version__",
    "pipeline", "project", "run_pipeline", "step",
    "Entity", "FeatureService", "FeatureStore", "FeatureView", "on_demand_feature",
    "span", "trace",
    "prompts",
    "VectorIndex",
    "embedders",
}


def test_exported_names_are_pinned() -> None:
    assert set(ars.__all__) == EXPECTED
    for name in ars.__all__:
        assert hasattr(ars, name), name
