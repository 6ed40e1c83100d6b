"""Robustness gates on scikit-learn's bundled data and real fitted models: noise that flips a deep tree but not a
regularised model, missing values a contract refuses or lets through to a model that cannot take them, values
beyond the training range, categories never seen, and the edge-case rows a user lists."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from arsenale.errors import InvalidInput
from arsenale.gates.results import CheckResult
from arsenale.gates.robustness import RobustnessCheck, check_robustness
from arsenale.registry.contract import Contract, build_contract

NOISE_ONLY: dict[str, Any] = {"missing": False, "out_of_range": False, "unseen_categories": False}
PROBES_ONLY: dict[str, Any] = {"noise": 0.0}


@pytest.fixture(scope="module")
def cancer() -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return {"X": X, "y": y, "linear": linear, "contract": build_contract(X, y, linear)}


@pytest.fixture(scope="module")
def diabetes() -> dict[str, Any]:
    """Diabetes with `sex` as text, one-hot encoded: one model refuses unseen categories, one ignores them."""
    X, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    X["sex"] = X["sex"].map({1.0: "F", 2.0: "M"}).astype(object)

    def model(handle_unknown: str) -> Pipeline:
        encode = make_column_transformer((OneHotEncoder(handle_unknown=handle_unknown), ["sex"]),
                                         remainder="passthrough")
        return make_pipeline(encode, Ridge()).fit(X, y)

    strict, lenient = model("error"), model("ignore")
    return {"X": X, "y": y, "strict": strict, "lenient": lenient, "contract": build_contract(X, y, strict)}


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def nullable(contract: Contract) -> Contract:
    """The same contract as if training data had held nulls in every column."""
    assert contract.inputs is not None
    columns = [c.model_copy(update={"nullable": True}) for c in contract.inputs.columns]
    return contract.model_copy(update={"inputs": contract.inputs.model_copy(update={"columns": columns})})


def test_noise_flips_a_deep_tree_but_not_a_regularised_model(cancer: dict[str, Any]) -> None:
    X, y = cancer["X"], cancer["y"]
    check = RobustnessCheck(noise=0.1, **NOISE_ONLY)
    stable = check_robustness(check, cancer["linear"], X, cancer["contract"])
    assert [r.name for r in stable] == ["robustness.noise"]
    assert stable[0].passed and stable[0].candidate is not None and stable[0].candidate >= 0.99, stable[0].message
    assert "keep their predicted class" in stable[0].message and stable[0].details["compared"] == "classes"

    tree = DecisionTreeClassifier(random_state=0).fit(X, y)  # grown to purity: every split is a cliff
    unstable = check_robustness(check, tree, X, cancer["contract"])[0]
    assert not unstable.passed and "below the minimum 99.00%" in unstable.message
    assert unstable.details["changed"] > 0.01 * len(X) and len(unstable.details["columns"]) == 30
    # The same seed draws the same noise: a gate's verdict does not change between runs.
    assert check_robustness(check, tree, X)[0].candidate == unstable.candidate


def test_noise_on_a_regressor_is_judged_against_the_spread_of_its_predictions(diabetes: dict[str, Any]) -> None:
    X, y = diabetes["X"].drop(columns="sex"), diabetes["y"]
    ridge = Ridge().fit(X, y)
    calm = check_robustness(RobustnessCheck(noise=0.01, **NOISE_ONLY), ridge, X)[0]
    assert calm.passed and "of the predictions' std" in calm.message and calm.details["compared"] == "values"
    tree = DecisionTreeRegressor(random_state=0).fit(X, y)
    jumpy = check_robustness(RobustnessCheck(noise=0.1, **NOISE_ONLY), tree, X)[0]
    assert not jumpy.passed and jumpy.candidate is not None and jumpy.candidate < 0.9, jumpy.message
    loose = RobustnessCheck(noise=0.1, max_relative_change=10.0, **NOISE_ONLY)
    assert check_robustness(loose, tree, X)[0].passed  # a 10-std move still counts as unchanged


def test_missing_values_the_contract_refuses_pass_those_it_lets_through_fail(cancer: dict[str, Any]) -> None:
    X, linear = cancer["X"], cancer["linear"]  # no imputer: LogisticRegression raises on NaN
    check = RobustnessCheck(out_of_range=False, unseen_categories=False, **PROBES_ONLY)
    caught = by_name(check_robustness(check, linear, X, cancer["contract"]))["robustness.missing"]
    assert caught.passed, caught.message
    outcome = caught.details["columns"]["mean radius"]
    assert outcome.startswith("caught by contract: ") and "null" in outcome

    through = by_name(check_robustness(check, linear, X, nullable(cancer["contract"])))["robustness.missing"]
    assert not through.passed and through.candidate == 0.0
    assert "'mean radius'" in through.message and "contract lets through" in through.message
    assert through.details["columns"]["worst area"].startswith("failed: ValueError")
    # Without a contract only the model's answer counts.
    assert not check_robustness(check, linear, X, None)[0].passed

    imputing = make_pipeline(FunctionTransformer(lambda a: np.nan_to_num(np.asarray(a, float))),
                             StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, cancer["y"])
    answered = check_robustness(check, imputing, X, nullable(cancer["contract"]))[0]
    assert answered.passed and set(answered.details["columns"].values()) == {"answered"}


def test_out_of_range_values_must_be_answered_because_serving_lets_them_through(cancer: dict[str, Any]) -> None:
    X, y, contract = cancer["X"], cancer["y"], cancer["contract"]
    check = RobustnessCheck(missing=False, unseen_categories=False, **PROBES_ONLY)
    fine = check_robustness(check, cancer["linear"], X, contract)[0]
    assert fine.name == "robustness.out_of_range" and fine.passed and "answers in 30 column(s)" in fine.message
    # log1p of a value far below a minimum of 0 is NaN, which the scaler passes on and the classifier refuses.
    logged = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=2000))
    logged.fit(X, y)
    broken = check_robustness(check, logged, X, contract)[0]
    assert not broken.passed and "'mean radius'" in broken.message
    assert broken.details["columns"]["mean radius"].startswith("failed: ValueError")
    assert not any(v.startswith("caught") for v in broken.details["columns"].values())  # ranges are not refused
    assert broken.details["columns"]["mean smoothness"] == "answered"  # its range lies inside (0, 1)


def test_a_model_returning_nan_fails_and_one_raising_never_escapes(cancer: dict[str, Any]) -> None:
    class Extrapolates:
        """Answers NaN beyond what it was fitted on, a common failure of hand-written models."""

        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.where(rows["mean area"] > 2501.0, np.nan, 1.0)

    class Broken:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            raise RuntimeError("the weights were never loaded\nsecond line")

    X, contract = cancer["X"], cancer["contract"]
    check = RobustnessCheck(missing=False, unseen_categories=False, **PROBES_ONLY)
    nan = check_robustness(check, Extrapolates(), X, contract)[0]
    assert not nan.passed and nan.details["columns"]["mean area"] == "failed: 10 of 20 prediction(s) are NaN, " \
                                                                       "infinite or null"
    broken = by_name(check_robustness(RobustnessCheck(), Broken(), X, contract))
    assert not broken["robustness.noise"].passed and "the weights were never loaded" in broken["robustness.noise"].message
    assert "second line" not in broken["robustness.noise"].message
    assert broken["robustness.missing"].passed  # the contract refuses every null before the model sees it
    assert not broken["robustness.out_of_range"].passed


def test_unseen_categories_fail_an_encoder_that_errors_unless_the_contract_refuses_them(
        diabetes: dict[str, Any]) -> None:
    X, contract = diabetes["X"], diabetes["contract"]
    check = RobustnessCheck(missing=False, out_of_range=False, **PROBES_ONLY)
    caught = check_robustness(check, diabetes["strict"], X, contract)[0]
    assert caught.passed and caught.details["columns"]["sex"].startswith("caught by contract: ")
    assert "not seen in training" in caught.details["columns"]["sex"]

    failed = check_robustness(check, diabetes["strict"], X, None)[0]
    assert not failed.passed and "'sex'" in failed.message and "unknown categories" in failed.message
    assert check_robustness(check, diabetes["lenient"], X, None)[0].passed

    open_ended = contract.model_copy(deep=True)  # as if `sex` had had too many values to list
    assert open_ended.inputs is not None
    open_ended.inputs.columns[1].categories = None
    assert not check_robustness(check, diabetes["strict"], X, open_ended)[0].passed


def test_unseen_categories_in_a_pandas_categorical_column(diabetes: dict[str, Any]) -> None:
    X = diabetes["X"].assign(sex=diabetes["X"]["sex"].astype("category"))
    check = RobustnessCheck(missing=False, out_of_range=False, **PROBES_ONLY)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["sex"]),
                                                  remainder="passthrough"), Ridge()).fit(X, diabetes["y"])
    result = check_robustness(check, model, X)[0]
    assert not result.passed and "'sex'" in result.message
    numbers_only = check_robustness(check, model, X.drop(columns="sex").assign(sex=0.0))[0]
    assert numbers_only.passed and numbers_only.message == "no text or category column to probe"


def test_edge_cases_with_expected_predictions(cancer: dict[str, Any]) -> None:
    X, y, linear = cancer["X"], cancer["y"], cancer["linear"]
    benign, malignant = X.iloc[int(np.flatnonzero(y == 1)[0])], X.iloc[int(np.flatnonzero(y == 0)[0])]
    assert linear.predict(benign.to_frame().T)[0] == 1 and linear.predict(malignant.to_frame().T)[0] == 0
    text = "\n".join([
        "noise = 0", "missing = false", "out_of_range = false", "unseen_categories = false",
        "[[edge_cases]]", *(f'"{k}" = {v!r}' for k, v in benign.items()), "expected = 1",
        "[[edge_cases]]", *(f'"{k}" = {v!r}' for k, v in malignant.items()), "expected = 1",  # wrong on purpose
        "[[edge_cases]]", '"mean radius" = 30', "expected = 0",  # the other 29 columns left out: missing
        "[[edge_cases]]", '"mean radius" = 30',
        "[[edge_cases]]", *(f'"{k}" = {v * 100!r}' for k, v in benign.items()),  # far beyond training: answered
    ])
    check = RobustnessCheck.model_validate(tomllib.loads(text))
    result = check_robustness(check, linear, X, cancer["contract"])[0]
    outcomes = result.details["outcomes"]
    assert result.name == "robustness.edge_cases" and not result.passed and result.candidate == 0.6
    assert outcomes[0] == "answered 1"
    assert outcomes[1] == "failed: expected 1, got 0"
    assert outcomes[2].startswith("failed: expected 0, but the contract refuses the row: ")
    assert outcomes[3].startswith("caught by contract: ")  # no expectation: refusing it is an answer
    assert outcomes[4].startswith("answered ")
    assert "edge_cases[1], edge_cases[2]" in result.message
    json.dumps(result.to_dict())  # details stay JSON

    good = RobustnessCheck(noise=0, missing=False, out_of_range=False, unseen_categories=False,
                           edge_cases=[check.edge_cases[0], check.edge_cases[3]])
    assert check_robustness(good, linear, X, cancer["contract"])[0].passed
    assert not check_robustness(good, linear, X, None)[0].passed  # without a contract the NaN row reaches the model


def test_a_regressor_edge_case_may_expect_a_range(diabetes: dict[str, Any]) -> None:
    X, model = diabetes["X"], diabetes["lenient"]
    row = X.iloc[0].to_dict()
    value = float(model.predict(X.iloc[[0]])[0])
    inside = {**row, "expected": [value - 1, value + 1]}
    outside = {**row, "expected": [value + 1, value + 2]}
    exact = {**row, "expected": value}
    check = RobustnessCheck(noise=0, missing=False, out_of_range=False, unseen_categories=False,
                            edge_cases=[inside, outside, exact])
    result = check_robustness(check, model, X, diabetes["contract"])[0]
    assert result.details["outcomes"][0].startswith("answered ") and result.details["outcomes"][2].startswith(
        "answered ")
    assert result.details["outcomes"][1].startswith("failed: expected [")


def test_a_policy_table_from_toml() -> None:
    check = RobustnessCheck.model_validate(tomllib.loads("noise = 1\nmin_stability = 1\nsample_rows = 50\n"))
    assert check.noise == 1.0 and check.min_stability == 1.0 and check.sample_rows == 50
    assert RobustnessCheck().edge_cases == [] and RobustnessCheck().max_relative_change == 0.05


@pytest.mark.parametrize("table, where", [
    ({"nosie": 0.1}, "nosie"),
    ({"noise": -0.1}, "noise"),
    ({"noise": True}, "noise"),
    ({"min_stability": 1.5}, "min_stability"),
    ({"sample_rows": 0}, "sample_rows"),
    ({"missing": "yes"}, "missing"),
    ({"edge_cases": [{"expected": 1}]}, "edge_cases"),
    ({"edge_cases": [{"a": [1, 2]}]}, "edge_cases"),
    ({"edge_cases": [{"a": 1, "expected": [3, 1]}]}, "edge_cases"),
    ({"edge_cases": {"a": 1}}, "edge_cases"),
])
def test_bad_policy_tables_name_the_key(table: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as e:
        RobustnessCheck.model_validate(table)
    assert e.value.errors()[0]["loc"][0] == where


def test_bad_data_and_edge_rows_are_clear_errors(cancer: dict[str, Any]) -> None:
    X, linear = cancer["X"], cancer["linear"]
    with pytest.raises(InvalidInput) as e:
        check_robustness(RobustnessCheck(), linear, X.iloc[:0])
    assert e.value.field == "X" and "no rows" in e.value.message
    with pytest.raises(InvalidInput, match="must be a DataFrame"):
        check_robustness(RobustnessCheck(), linear, X.to_numpy())
    check = RobustnessCheck(edge_cases=[{"mean radius": 10.0}, {"mean radius": 10.0, "mean raduis": 1.0}])
    with pytest.raises(InvalidInput) as e:
        check_robustness(check, linear, X)
    assert e.value.field == "robustness.edge_cases[1]" and "'mean raduis'" in e.value.message


def test_an_int_column_stays_int_under_noise_and_out_of_range(diabetes: dict[str, Any]) -> None:
    """Serving refuses 61.3 where the contract says int: the probes send what a caller could send."""
    X = diabetes["X"].assign(age=diabetes["X"]["age"].astype("int64"))
    inner = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["sex"]),
                                                  remainder="passthrough"), Ridge()).fit(X, diabetes["y"])
    seen: list[pd.DataFrame] = []

    class Spy:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            seen.append(rows.copy())
            return np.asarray(inner.predict(rows))

    contract = build_contract(X, diabetes["y"], inner)
    results = check_robustness(RobustnessCheck(missing=False, unseen_categories=False), Spy(), X, contract)
    assert all(r.passed for r in results), [r.message for r in results]
    assert all(frame["age"].dtype == "int64" for frame in seen)
    lo, hi = X["age"].min(), X["age"].max()
    probed = [f["age"] for f in seen[2:] if not f["age"].between(lo, hi).any()]  # after the two noise calls
    assert len(probed) == 1 and (probed[0] < lo).sum() == 10 and (probed[0] > hi).sum() == 10
