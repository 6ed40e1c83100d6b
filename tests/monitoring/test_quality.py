"""monitoring.quality: each check on crafted windows against contracts built from real training data."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from arsenale.errors import InvalidInput
from arsenale.monitoring.quality import QualityIssue, QualityReport, check_quality
from arsenale.registry.contract import Contract, build_contract, infer_schema, profile


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, Contract]:
    data = load_breast_cancer(as_frame=True)
    return data.data, build_contract(data.data, data.target)


def shop(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "city": rng.choice(["rome", "oslo", "lima"], n, p=[0.5, 0.3, 0.2]),
        "items": rng.integers(1, 10, n),
        "amount": rng.normal(50, 10, n),
        "member": rng.choice([True, False], n),
        "coupon": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),  # nullable in training
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 30, n), unit="s"),
    })


def window_of(n: int, seed: int) -> pd.DataFrame:
    """Live rows drawn from the training rows: in range, with ordinary sampling noise."""
    return shop().sample(n, replace=True, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def shop_contract() -> Contract:
    return build_contract(shop())


def by_kind(report: QualityReport, kind: str) -> list[QualityIssue]:
    return [i for i in report.issues if i.kind == kind]


# ---------------------------------------------------------------- clean windows

def test_training_data_itself_gives_no_issues(cancer: tuple[pd.DataFrame, Contract],
                                              shop_contract: Contract) -> None:
    X, contract = cancer
    report = check_quality(contract, X)
    assert report.issues == [] and report.passed and report.notes == []
    assert report.summary == {"rows": 569, "columns": 30, "issues": 0, "errors": 0, "warnings": 0,
                              "missing_share": 0.0, "out_of_range_share": 0.0}
    assert set(report.columns) == set(X.columns)
    assert check_quality(shop_contract, shop()).issues == []


def test_schema_dict_and_json_forms_are_accepted(shop_contract: Contract) -> None:
    assert shop_contract.inputs is not None
    window = window_of(300, 1)
    for form in (shop_contract.inputs, json.loads(shop_contract.to_json()),
                 json.loads(shop_contract.inputs.model_dump_json())):
        report = check_quality(form, window)
        assert report.errors == []
    schema_only = check_quality(shop_contract.inputs, window)
    assert schema_only.notes == ["no reference profile: training/serving skew was not checked"]


# ---------------------------------------------------------------- schema violations

def test_missing_and_extra_columns_are_errors(cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    window = X.drop(columns=["mean radius"]).assign(debug=1.0, request_id="r", label=0)
    report = check_quality(contract, window)
    kinds = {(i.kind, i.column, i.severity) for i in report.issues}
    assert kinds == {("missing_column", "mean radius", "error"), ("extra_column", "debug", "error")}
    assert all(i.count == 569 and i.share == 1.0 for i in report.issues)
    assert not report.passed and report.summary["errors"] == 2
    strict = check_quality(contract, window, ignore=[])
    assert {i.column for i in by_kind(strict, "extra_column")} == {"debug", "request_id", "label"}


def test_wrong_types(shop_contract: Contract) -> None:
    window = shop()  # the training rows, so that only the types are wrong
    amount = window["amount"].astype(object)
    amount.iloc[[3, 7]] = ["oops", "n/a"]
    window["amount"] = amount
    window["items"] = window["items"] + 0.5  # fractions in an int column
    window["member"] = window["member"].astype(int)  # 0/1 where training had booleans
    window["seen"] = window["seen"].astype(str)  # ISO text is fine for datetimes
    report = check_quality(shop_contract, window)
    wrong = {i.column: i for i in by_kind(report, "wrong_type")}
    assert set(wrong) == {"amount", "items", "member"}
    assert wrong["amount"].count == 2 and wrong["amount"].examples == ["oops", "n/a"]
    assert wrong["items"].count == 400 and wrong["member"].count == 400
    assert all(i.severity == "error" for i in wrong.values())
    assert report.columns["amount"].wrong_type == 2
    # the readable numbers of a partly wrong column are still checked
    assert report.columns["amount"].out_of_range == 0 and "amount" not in {i.column for i in report.issues
                                                                            if i.kind != "wrong_type"}


def test_unparseable_timestamps_are_wrong_types(shop_contract: Contract) -> None:
    window = window_of(150, 3)
    seen = window["seen"].astype(str).astype(object)
    seen.iloc[0] = "yesterday"
    window["seen"] = seen
    (issue,) = check_quality(shop_contract, window).issues
    assert (issue.kind, issue.column, issue.count, issue.examples) == ("wrong_type", "seen", 1, ["yesterday"])


# ---------------------------------------------------------------- values

def test_nulls_where_none_in_training_are_errors(cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    window = X.copy()
    window.loc[window.index[:57], "mean texture"] = np.nan
    report = check_quality(contract, window)
    (issue,) = report.issues
    assert (issue.kind, issue.column, issue.severity, issue.count) == ("nulls", "mean texture", "error", 57)
    assert issue.share == pytest.approx(57 / 569)
    assert report.columns["mean texture"].null_share == pytest.approx(57 / 569)
    assert report.summary["missing_share"] == pytest.approx(57 / (569 * 30))


def test_null_share_of_a_nullable_column_is_compared_with_training(shop_contract: Contract) -> None:
    window = window_of(1000, 4)
    window.loc[window.index[:600], "coupon"] = np.nan
    report = check_quality(shop_contract, window)
    (issue,) = report.issues
    assert (issue.kind, issue.column, issue.severity) == ("skew", "coupon", "warning")
    assert "null share" in issue.message and issue.details["null_share"] > 0.6


def test_out_of_range_counts_share_and_examples(cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    window = X.iloc[:200].copy()
    hi = float(X["mean area"].max())
    window.loc[window.index[:4], "mean area"] = [hi + 1, hi + 2, -5.0, np.inf]
    report = check_quality(contract, window)
    (issue,) = report.issues
    assert (issue.kind, issue.column, issue.count, issue.severity) == ("out_of_range", "mean area", 4, "warning")
    assert issue.share == pytest.approx(0.02) and issue.examples == [hi + 1, hi + 2, -5.0, float("inf")]
    assert report.to_dict()["issues"][0]["examples"] == [hi + 1, hi + 2, -5.0, "Infinity"]
    assert report.summary["out_of_range_share"] == pytest.approx(4 / (200 * 30))


def test_timestamps_outside_the_training_range(shop_contract: Contract) -> None:
    window = window_of(150, 5)
    window.loc[window.index[:3], "seen"] = pd.Timestamp("2030-01-01")
    (issue,) = check_quality(shop_contract, window).issues
    assert (issue.kind, issue.column, issue.count) == ("out_of_range", "seen", 3)


def test_unseen_categories(shop_contract: Contract) -> None:
    window = window_of(120, 6)
    window.loc[window.index[:5], "city"] = ["paris", "paris", "kyiv", "rome", None]
    report = check_quality(shop_contract, window)
    unseen = by_kind(report, "unseen_category")
    assert [(i.column, i.count, i.examples) for i in unseen] == [("city", 3, ["paris", "kyiv"])]
    assert report.columns["city"].unseen == 3
    assert {i.kind for i in report.issues} == {"unseen_category", "nulls"}  # city had no nulls in training


def test_constant_columns_where_training_varied(cancer: tuple[pd.DataFrame, Contract],
                                                shop_contract: Contract) -> None:
    X, contract = cancer
    window = X.assign(**{"mean smoothness": 0.1})
    (issue,) = check_quality(contract, window).issues
    assert (issue.kind, issue.column, issue.count, issue.examples) == ("constant", "mean smoothness", 569, [0.1])
    cities = check_quality(shop_contract, window_of(200, 12).assign(city="oslo")).issues
    assert [(i.kind, i.column) for i in cities] == [("constant", "city")]


def test_all_null_and_empty_windows_give_clear_issues(cancer: tuple[pd.DataFrame, Contract],
                                                      shop_contract: Contract) -> None:
    X, contract = cancer
    window = X.assign(**{"mean radius": np.nan})
    (issue,) = check_quality(contract, window).issues
    assert (issue.kind, issue.count, issue.share) == ("nulls", 569, 1.0)
    coupon = check_quality(shop_contract, window_of(50, 11).assign(coupon=np.nan)).issues
    assert [(i.kind, i.column, i.severity) for i in coupon] == [("nulls", "coupon", "warning")]

    empty = check_quality(contract, X.iloc[:0])
    assert [(i.kind, i.column, i.count, i.share) for i in empty.issues] == [("empty_window", None, 0, 0.0)]
    assert empty.summary["missing_share"] == 0.0 and empty.summary["out_of_range_share"] == 0.0
    text = empty.to_json() + check_quality(contract, window).to_json()
    assert "NaN" not in text


# ---------------------------------------------------------------- training/serving skew

def test_a_feature_scaled_at_serving_gives_skew_for_that_feature_only(
        cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    window = X.assign(**{"worst perimeter": X["worst perimeter"] * 10})
    report = check_quality(contract, window)
    skew = by_kind(report, "skew")
    assert [i.column for i in skew] == ["worst perimeter"]
    (issue,) = skew
    assert issue.severity == "warning" and "mean" in issue.message and "std" in issue.message
    assert issue.details["mean"] == pytest.approx(10 * issue.details["reference_mean"])
    assert {i.column for i in report.issues} == {"worst perimeter"}  # plus out_of_range for it


def test_category_share_moves_beyond_tolerance(shop_contract: Contract) -> None:
    window = window_of(1000, 7)
    window["city"] = np.where(np.arange(1000) < 700, "lima", window["city"])
    (issue,) = check_quality(shop_contract, window).issues
    assert (issue.kind, issue.column) == ("skew", "city") and "'lima'" in issue.message
    small = window_of(1000, 8)  # ordinary sampling noise stays within the tolerances
    assert check_quality(shop_contract, small).issues == []


def test_reference_can_be_given_apart_from_the_schema(cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    assert contract.inputs is not None
    window = X.assign(**{"mean radius": X["mean radius"] + 3 * X["mean radius"].std()})
    for reference in (X, profile(X), json.loads(profile(X).model_dump_json())):
        report = check_quality(contract.inputs, window, reference=reference)
        assert "mean radius" in {i.column for i in by_kind(report, "skew")}
    schema_only = infer_schema(X)
    assert by_kind(check_quality(schema_only, window), "skew") == []


# ---------------------------------------------------------------- determinism, bad input, speed

def test_same_window_gives_the_same_report(shop_contract: Contract) -> None:
    window = window_of(500, 9)
    window.loc[window.index[:9], "city"] = "paris"
    window.loc[window.index[:9], "amount"] = 1e6
    first, second = check_quality(shop_contract, window), check_quality(shop_contract, window)
    assert first.to_json() == second.to_json() and first.issues
    assert QualityReport.model_validate(first.to_dict()) == first


@pytest.mark.parametrize(("contract", "current", "field"), [
    ("contract", "table.csv", "current"),
    ("contract", [[1.0, 2.0]], "current"),
    ("contract", np.zeros((3, 30)), "current"),
    (Contract(), "X", "contract"),
    ("not a contract", "X", "contract"),
    ({"columns": [{"name": "a"}]}, "X", "contract"),
])
def test_bad_input_names_the_field(cancer: tuple[pd.DataFrame, Contract], contract: object, current: object,
                                   field: str) -> None:
    X, real = cancer
    with pytest.raises(InvalidInput) as err:
        check_quality(real if contract == "contract" else contract,  # type: ignore[arg-type]
                      X if isinstance(current, str) and current == "X" else current)  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_reference_and_duplicate_columns(cancer: tuple[pd.DataFrame, Contract]) -> None:
    X, contract = cancer
    with pytest.raises(InvalidInput) as err:
        check_quality(contract, X, reference=42)  # type: ignore[arg-type]
    assert err.value.field == "reference"
    doubled = pd.concat([X, X[["mean radius"]]], axis=1)
    with pytest.raises(InvalidInput) as err:
        check_quality(contract, doubled)
    assert err.value.field == "current"


@pytest.mark.slow
def test_million_rows_by_thirty_columns(shop_contract: Contract, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(10)
    n = 1_000_000
    train = pd.DataFrame({f"x{j}": rng.normal(j, 1 + j, 20_000) for j in range(26)}
                         | {f"c{j}": rng.choice(["a", "b", "c", "d"], 20_000) for j in range(4)})
    contract = build_contract(train)
    window = pd.DataFrame({f"x{j}": rng.normal(j, 1 + j, n) for j in range(26)}
                          | {f"c{j}": rng.choice(["a", "b", "c", "e"], n) for j in range(4)})
    window.loc[:999, "x0"] = np.nan
    start = time.perf_counter()
    report = check_quality(contract, window)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\ncheck_quality on 1,000,000 rows x 30 columns: {elapsed:.2f} s")
    assert report.summary["rows"] == n and {i.kind for i in report.issues} >= {"nulls", "unseen_category"}
    assert elapsed < 30
