"""Evidently's side of benchmarks/drift.py: its data-drift preset on two Parquet files.

Runs in benchmarks/.venv-evidently (created by drift.py with `pip install evidently==0.7.*`):

    .venv-evidently/bin/python drift_evidently.py REF.parquet CUR.parquet SCHEMA.json OUT.json

SCHEMA.json names the numeric and categorical columns (Evidently's DataDefinition), so
both sides type every column the same way. The whole process is timed and its peak
memory measured by the driver; the timings inside are only for the JSON.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently import __version__ as evidently_version
from evidently.presets import DataDriftPreset

# Evidently reports a method by display name; these report p-values (drift when below the threshold).
P_VALUE_METHODS = ("p_value",)


def main() -> int:
    ref_path, cur_path, schema_path, out_path = sys.argv[1:5]
    with open(schema_path) as f:
        schema = json.load(f)
    t_import = time.perf_counter()
    reference = pd.read_parquet(ref_path)
    current = pd.read_parquet(cur_path)
    t_read = time.perf_counter()
    definition = DataDefinition(numerical_columns=schema["numeric"], categorical_columns=schema["categorical"])
    report = Report([DataDriftPreset(drift_share=schema.get("drift_share", 0.5))])
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))
    result = snapshot.dict()
    t_run = time.perf_counter()

    columns: dict[str, dict] = {}
    share = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method, threshold, value = config["method"], config["threshold"], float(metric["value"])
            p_value = any(tag in method.replace("-", "_") for tag in P_VALUE_METHODS)
            columns[config["column"]] = {
                "method": method, "statistic": value, "threshold": threshold,
                "drifted": value < threshold if p_value else value >= threshold,
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
    out = {
        "side": "evidently", "version": evidently_version, "columns": columns, "drift_share": share,
        "dataset_drift": share is not None and share >= schema.get("drift_share", 0.5),
        "seconds": {"import": t_import - T0, "read": t_read - t_import, "drift": t_run - t_read,
                    "total": time.perf_counter() - T0},
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
