"""Operational budgets: a candidate that predicts well can still be too slow, too big, or unable to take the
requests the deployment it replaces already receives.

    [operational]
    max_latency_ms_per_row = 5.0   # median of single-row predict calls
    latency_repeats = 50
    max_batch_latency_ms = 200.0   # median of predict calls on one batch
    batch_rows = 1000
    max_model_mb = 50.0            # the model's stored files, in MiB (like every size Arsenale prints)
    contract_compatible = true     # callers of the deployed version must not break

A budget left out is not checked. Contract compatibility reads the two input schemas: a removed column, a
changed type (int → float and string ↔ category excepted: callers send the same JSON values) or a new
column breaks callers (serving refuses a record without every contract column, nullable or not); a column that stopped accepting nulls or lost categories only
refuses some of their values, and is reported as a warning.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from arsenale.errors import InvalidInput
from arsenale.gates.results import CheckResult, Strict, toml_float
from arsenale.registry.contract import ColumnSchema, Contract
from arsenale.units import human_size

__all__ = ["OperationalCheck", "check_operational", "compare_contracts"]

MIB = 1024 * 1024
BATCH_REPEATS = 5  # timed batch calls, after one untimed warm-up call
MAX_ERROR_CHARS = 300

# Type changes callers do not notice: they keep sending the same JSON values.
_WIDENINGS = {("int", "float"), ("string", "category"), ("category", "string")}


class OperationalCheck(Strict):
    max_latency_ms_per_row: float | None = Field(default=None, gt=0, description="budget for the median "
                                                 "single-row call")
    latency_repeats: int = Field(default=50, ge=1, le=10_000)
    max_batch_latency_ms: float | None = Field(default=None, gt=0, description="budget for the median "
                                               "batch call")
    batch_rows: int = Field(default=1000, ge=1, le=1_000_000)
    max_model_mb: float | None = Field(default=None, gt=0, description="budget for the stored model files, "
                                       "in MiB")
    contract_compatible: bool = True

    _number = field_validator("max_latency_ms_per_row", "max_batch_latency_ms", "max_model_mb",
                              mode="before")(toml_float)


def check_operational(check: OperationalCheck, model: Any, X: pd.DataFrame | None, *, size_bytes: int | None,
                      candidate_contract: Contract | None, deployed_contract: Contract | None) -> list[CheckResult]:
    """One result per budget the check sets. `X` supplies the rows timed (only needed for a latency budget),
    `size_bytes` the size of the model's stored files, `deployed_contract` the contract of the version the
    candidate would replace (None when nothing is deployed). A model that raises fails the timing, never
    escapes."""
    if size_bytes is not None and (isinstance(size_bytes, bool) or not isinstance(size_bytes, int)
                                   or size_bytes < 0):
        raise InvalidInput(f"size_bytes must be a non-negative integer, got {size_bytes!r}", field="size_bytes")
    results = []
    for budget, timer in ((check.max_latency_ms_per_row, _latency_per_row),
                          (check.max_batch_latency_ms, _batch_latency)):
        if budget is None:
            continue
        if not isinstance(X, pd.DataFrame) or len(X) == 0:
            raise InvalidInput("a latency budget needs rows to time: X must be a DataFrame with at least one "
                               "row", field="X")
        results.append(timer(check, budget, model, X))
    if check.max_model_mb is not None:
        results.append(_model_size(check.max_model_mb, size_bytes))
    if check.contract_compatible:
        results.append(_contract(candidate_contract, deployed_contract))
    return results


# ---------------------------------------------------------------- latency

def _timings_ms(call: Callable[[pd.DataFrame], Any], frames: list[pd.DataFrame]) -> list[float]:
    """Wall time of `call` on each frame, after one untimed call that warms caches and lazy imports."""
    with warnings.catch_warnings():  # a model's warnings are not part of its latency budget's verdict
        warnings.simplefilter("ignore")
        call(frames[0])
        out = []
        for frame in frames:
            start = time.perf_counter_ns()
            call(frame)
            out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:MAX_ERROR_CHARS]


def _latency_per_row(check: OperationalCheck, budget: float, model: Any, X: pd.DataFrame) -> CheckResult:
    name = "operational.latency_per_row"
    repeats = check.latency_repeats
    # Rows are cut before the clock starts: slicing a frame is the caller's cost, not the model's.
    frames = [X.iloc[[i % len(X)]] for i in range(repeats)]
    try:
        samples = _timings_ms(model.predict, frames)
    except Exception as e:  # noqa: BLE001 - the user's model: a failure is a finding, not a crash
        return CheckResult(name, False, f"the model fails on a single row: {_error(e)}", None,
                           details={"error": _error(e)})
    p50, p95 = float(np.median(samples)), float(np.percentile(samples, 95))
    passed = p50 <= budget
    message = (f"p50 {p50:.3f} ms, p95 {p95:.3f} ms per single-row call over {repeats} calls "
               f"({'within' if passed else 'over'} the budget of {budget:g} ms)")
    return CheckResult(name, passed, message, p50, details={
        "p50_ms": p50, "p95_ms": p95, "budget_ms": budget, "samples_ms": [round(s, 4) for s in samples]})


def _batch_latency(check: OperationalCheck, budget: float, model: Any, X: pd.DataFrame) -> CheckResult:
    name = "operational.batch_latency"
    rows = check.batch_rows
    batch = X.iloc[np.arange(rows) % len(X)].reset_index(drop=True)  # X's rows repeated up to the batch size
    try:
        samples = _timings_ms(model.predict, [batch] * BATCH_REPEATS)
    except Exception as e:  # noqa: BLE001 - the user's model: a failure is a finding, not a crash
        return CheckResult(name, False, f"the model fails on a batch of {rows} rows: {_error(e)}", None,
                           details={"error": _error(e), "batch_rows": rows})
    p50, worst = float(np.median(samples)), float(max(samples))
    passed = p50 <= budget
    message = (f"median {p50:.2f} ms (max {worst:.2f} ms) for a batch of {rows} rows over {BATCH_REPEATS} "
               f"calls, {p50 * 1000 / rows:.2f} µs per row ({'within' if passed else 'over'} the budget of "
               f"{budget:g} ms)")
    return CheckResult(name, passed, message, p50, details={
        "p50_ms": p50, "max_ms": worst, "budget_ms": budget, "batch_rows": rows,
        "samples_ms": [round(s, 4) for s in samples]})


# ---------------------------------------------------------------- size

def _model_size(budget_mb: float, size_bytes: int | None) -> CheckResult:
    name = "operational.model_size"
    if size_bytes is None:
        return CheckResult(name, False, f"the model's size is unknown, so the budget of {budget_mb:g} MiB cannot "
                           "be checked", None, details={"budget_mb": budget_mb})
    mb = size_bytes / MIB
    passed = mb <= budget_mb
    message = (f"the model's files take {human_size(size_bytes)} ({'within' if passed else 'over'} the budget "
               f"of {budget_mb:g} MiB)")
    return CheckResult(name, passed, message, mb, details={"size_bytes": size_bytes, "budget_mb": budget_mb})


# ---------------------------------------------------------------- contract

def compare_contracts(old: Contract, new: Contract) -> list[str]:
    """What in `new` breaks callers of `old`: removed input columns, type changes other than int → float
    (string ↔ category), tensor shape changes and new columns. Empty when `new`
    takes every request `old` took (up to the warnings `_differences` also finds)."""
    return _differences(old, new)[0]


def _differences(old: Contract, new: Contract) -> tuple[list[str], list[str]]:
    """(breaking, warnings) between two contracts' input schemas."""
    if old.inputs is None:
        return [], []
    if new.inputs is None:
        return [("the candidate has no input schema (registered without data): callers' requests cannot be "
                 "checked against it")], []
    before = {c.name: c for c in old.inputs.columns}
    after = {c.name: c for c in new.inputs.columns}
    breaking: list[str] = []
    warned: list[str] = []
    removed = [n for n in before if n not in after]
    if removed:
        breaking.append(f"removed input column(s) that callers send: {', '.join(map(repr, removed))}")
    for name, was in before.items():
        now = after.get(name)
        if now is not None:
            _column_changes(was, now, breaking, warned)
    for name, now in after.items():
        if name in before:
            continue
        # Even a nullable one: serving refuses a record that leaves out a contract column.
        breaking.append(f"new input column {name!r}: callers of the deployed version do not send it")
    return breaking, warned


def _column_changes(was: ColumnSchema, now: ColumnSchema, breaking: list[str], warned: list[str]) -> None:
    name = was.name
    if was.dtype != now.dtype and (was.dtype, now.dtype) not in _WIDENINGS:
        breaking.append(f"column {name!r} changed type from {was.dtype} to {now.dtype}")
    if was.shape != now.shape:
        breaking.append(f"column {name!r} changed shape from {was.shape} to {now.shape}")
    if was.nullable and not now.nullable:
        warned.append(f"column {name!r} no longer accepts nulls")
    if now.categories is not None:
        if was.categories is None:
            warned.append(f"column {name!r} now accepts only {len(now.categories)} categories")
        elif lost := [c for c in was.categories if c not in set(now.categories)]:
            warned.append(f"column {name!r} no longer accepts the categories {', '.join(map(repr, lost))}")


def _contract(candidate: Contract | None, deployed: Contract | None) -> CheckResult:
    name = "operational.contract"
    if deployed is None or deployed.inputs is None:
        return CheckResult(name, True, "nothing deployed to compare with", None, details={"breaking": [],
                                                                                          "warnings": []})
    breaking, warned = _differences(deployed, candidate or Contract())
    details: dict[str, Any] = {"breaking": breaking, "warnings": warned,
                               "deployed_columns": len(deployed.inputs.columns)}
    if candidate is not None and candidate.inputs is not None:
        details["candidate_columns"] = len(candidate.inputs.columns)
    if breaking:
        return CheckResult(name, False, "breaks callers of the deployed version: " + "; ".join(breaking),
                           float(len(breaking)), details=details)
    message = "compatible with the deployed version's inputs"
    if warned:
        message += f" ({len(warned)} warning(s): " + "; ".join(warned) + ")"
    return CheckResult(name, True, message, 0.0, details=details)
