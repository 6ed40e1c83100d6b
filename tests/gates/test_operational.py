"""Operational gates with a real fitted model: latency budgets per row and per batch, the size of its stored
files, and whether its contract still takes the requests the deployed version takes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from arsenale.errors import InvalidInput
from arsenale.gates.operational import OperationalCheck, check_operational, compare_contracts
from arsenale.gates.results import CheckResult
from arsenale.registry.contract import Contract, build_contract

NO_CONTRACT: dict[str, Any] = {"contract_compatible": False}


@pytest.fixture(scope="module")
def cancer() -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return {"X": X, "y": y, "model": model}


def run(check: OperationalCheck, model: Any, X: pd.DataFrame | None, *, size_bytes: int | None = None,
        candidate: Contract | None = None, deployed: Contract | None = None) -> list[CheckResult]:
    return check_operational(check, model, X, size_bytes=size_bytes, candidate_contract=candidate,
                             deployed_contract=deployed)


def contract(**columns: Any) -> Contract:
    """The contract of a model trained on a frame with these columns."""
    return build_contract(pd.DataFrame(columns))


def test_latency_budgets_pass_when_generous_and_fail_when_tiny(cancer: dict[str, Any]) -> None:
    X, model = cancer["X"], cancer["model"]
    generous = OperationalCheck(max_latency_ms_per_row=10_000, max_batch_latency_ms=10_000, latency_repeats=20,
                                batch_rows=2000, **NO_CONTRACT)
    row, batch = run(generous, model, X)
    assert (row.name, batch.name) == ("operational.latency_per_row", "operational.batch_latency")
    assert row.passed and batch.passed, (row.message, batch.message)
    assert "within the budget of 10000 ms" in row.message and "a batch of 2000 rows" in batch.message
    assert len(row.details["samples_ms"]) == 20 and row.details["p50_ms"] <= row.details["p95_ms"]
    assert row.candidate == row.details["p50_ms"] > 0 and batch.details["batch_rows"] == 2000
    json.dumps([row.to_dict(), batch.to_dict()])

    tiny = OperationalCheck(max_latency_ms_per_row=1e-6, max_batch_latency_ms=1e-6, latency_repeats=5, **NO_CONTRACT)
    row, batch = run(tiny, model, X)
    assert not row.passed and not batch.passed
    assert "over the budget of 1e-06 ms" in row.message and "p95" in row.message


def test_a_single_row_is_what_the_per_row_budget_times(cancer: dict[str, Any]) -> None:
    sizes: list[int] = []

    class Counting:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            sizes.append(len(rows))
            return np.zeros(len(rows))

    check = OperationalCheck(max_latency_ms_per_row=1000, latency_repeats=7, max_batch_latency_ms=1000,
                             batch_rows=1500, **NO_CONTRACT)
    assert all(r.passed for r in run(check, Counting(), cancer["X"]))
    assert sizes == [1] * 8 + [1500] * 6  # a warm-up call before each series, which is not timed


def test_a_model_that_raises_fails_the_budget_without_escaping(cancer: dict[str, Any]) -> None:
    class Broken:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            raise MemoryError("out of memory\nmore detail")

    check = OperationalCheck(max_latency_ms_per_row=10, max_batch_latency_ms=10, **NO_CONTRACT)
    row, batch = run(check, Broken(), cancer["X"])
    assert not row.passed and row.message == "the model fails on a single row: MemoryError: out of memory"
    assert not batch.passed and "a batch of 1000 rows" in batch.message and batch.candidate is None


def test_model_size_from_the_stored_file(cancer: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(cancer["model"], path)
    size = path.stat().st_size
    small, = run(OperationalCheck(max_model_mb=1, **NO_CONTRACT), None, None, size_bytes=size)
    assert small.name == "operational.model_size" and small.passed and "KiB" in small.message
    assert small.candidate == pytest.approx(size / 2**20) and small.details["size_bytes"] == size
    big, = run(OperationalCheck(max_model_mb=size / 2**20 / 2, **NO_CONTRACT), None, None, size_bytes=size)
    assert not big.passed and "over the budget" in big.message
    unknown, = run(OperationalCheck(max_model_mb=1, **NO_CONTRACT), None, None)
    assert not unknown.passed and "unknown" in unknown.message
    with pytest.raises(InvalidInput) as e:
        run(OperationalCheck(max_model_mb=1, **NO_CONTRACT), None, None, size_bytes=-1)
    assert e.value.field == "size_bytes"


def test_nothing_deployed_passes_and_the_same_contract_is_compatible(cancer: dict[str, Any]) -> None:
    X, y, model = cancer["X"], cancer["y"], cancer["model"]
    same = build_contract(X, y, model)
    first, = run(OperationalCheck(), model, X, candidate=same)
    assert first.name == "operational.contract" and first.passed and first.message == "nothing deployed to compare with"
    again, = run(OperationalCheck(), model, X, candidate=same, deployed=build_contract(X.iloc[:100], y[:100], model))
    assert again.passed and again.message == "compatible with the deployed version's inputs"
    assert again.details == {"breaking": [], "warnings": [], "deployed_columns": 30, "candidate_columns": 30}


def test_a_removed_column_and_a_type_change_break_callers(cancer: dict[str, Any]) -> None:
    X, y, model = cancer["X"], cancer["y"], cancer["model"]
    deployed = build_contract(X, y, model)
    fewer = build_contract(X.drop(columns=["mean radius", "worst area"]), y)
    assert compare_contracts(deployed, fewer) == [
        "removed input column(s) that callers send: 'mean radius', 'worst area'"]
    result, = run(OperationalCheck(), model, X, candidate=fewer, deployed=deployed)
    assert not result.passed and "'mean radius'" in result.message and result.candidate == 1.0

    old = contract(age=[30, 40, 50], city=["Rome", "Oslo", "Rome"])
    as_text = contract(age=["30", "40", "50"], city=["Rome", "Oslo", "Rome"])
    assert compare_contracts(old, as_text) == ["column 'age' changed type from int to string"]
    narrowed = contract(age=[30.5, 40.0, 50.0], city=["Rome", "Oslo", "Rome"])
    assert compare_contracts(narrowed, old) == ["column 'age' changed type from float to int"]
    flags = contract(age=[True, False, True], city=["Rome", "Oslo", "Rome"])
    assert compare_contracts(old, flags) == ["column 'age' changed type from int to bool"]


def test_widening_int_to_float_and_string_to_category_are_compatible() -> None:
    old = contract(age=[30, 40, 50], city=["Rome", "Oslo", "Rome"])
    new = contract(age=[30.5, 40.0, 50.0], city=pd.Categorical(["Rome", "Oslo", "Rome"]))
    assert compare_contracts(old, new) == []
    result, = run(OperationalCheck(), None, None, candidate=new, deployed=old)
    assert result.passed and result.details["warnings"] == []


def test_narrower_values_are_warnings_and_new_columns_break() -> None:
    old = contract(age=[30.0, None, 50.0], city=["Rome", "Oslo", "Paris"])
    stricter = contract(age=[30.0, 40.0, 50.0], city=["Rome", "Oslo", "Rome"])
    result, = run(OperationalCheck(), None, None, candidate=stricter, deployed=old)
    assert result.passed and result.details["warnings"] == [
        "column 'age' no longer accepts nulls", "column 'city' no longer accepts the categories 'Paris'"]
    assert "2 warning(s)" in result.message

    added = contract(age=[30.0, 40.0, 50.0], city=["Rome", "Oslo", "Paris"], income=[1.0, 2.0, 3.0])
    assert compare_contracts(old, added) == [
        "new input column 'income': callers of the deployed version do not send it"]
    # Nullable or not: serving refuses a record without every contract column.
    optional = contract(age=[30.0, None, 50.0], city=["Rome", "Oslo", "Paris"], income=[1.0, None, 3.0])
    assert compare_contracts(old, optional) == compare_contracts(old, added)
    result, = run(OperationalCheck(), None, None, candidate=optional, deployed=old)
    assert not result.passed


def test_a_candidate_without_an_input_schema_cannot_be_shown_compatible() -> None:
    deployed = contract(age=[30, 40])
    result, = run(OperationalCheck(), None, None, candidate=None, deployed=deployed)
    assert not result.passed and "no input schema" in result.message
    assert compare_contracts(Contract(), deployed) == []  # nothing was promised to callers


def test_only_the_budgets_a_policy_sets_are_checked(cancer: dict[str, Any]) -> None:
    assert run(OperationalCheck(**NO_CONTRACT), cancer["model"], cancer["X"]) == []
    check = OperationalCheck.model_validate(tomllib.loads(
        "max_latency_ms_per_row = 5\nmax_batch_latency_ms = 200\nmax_model_mb = 50\nbatch_rows = 10\n"))
    assert (check.max_latency_ms_per_row, check.max_batch_latency_ms, check.max_model_mb) == (5.0, 200.0, 50.0)
    assert check.latency_repeats == 50 and check.contract_compatible


@pytest.mark.parametrize("table, where", [
    ({"max_latency_ms": 5.0}, "max_latency_ms"),
    ({"max_latency_ms_per_row": -1.0}, "max_latency_ms_per_row"),
    ({"max_batch_latency_ms": 0}, "max_batch_latency_ms"),
    ({"max_model_mb": "50MB"}, "max_model_mb"),
    ({"max_model_mb": True}, "max_model_mb"),
    ({"latency_repeats": 0}, "latency_repeats"),
    ({"batch_rows": 2.5}, "batch_rows"),
    ({"contract_compatible": "yes"}, "contract_compatible"),
])
def test_bad_policy_tables_name_the_key(table: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as e:
        OperationalCheck.model_validate(table)
    assert e.value.errors()[0]["loc"][0] == where


def test_a_latency_budget_without_rows_is_a_clear_error(cancer: dict[str, Any]) -> None:
    for X in (None, cancer["X"].iloc[:0]):
        with pytest.raises(InvalidInput) as e:
            run(OperationalCheck(max_batch_latency_ms=10, **NO_CONTRACT), cancer["model"], X)
        assert e.value.field == "X" and "rows to time" in e.value.message
