"""Slice gates on seeded scikit-learn data: a candidate whose training data lost one region is as good as the
champion overall but refused on that region; numeric columns are cut into labelled quantile bins; a slice
where the metric is undefined is shown, not compared; bad input is a clear error naming the field."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import METRICS, Metric
from arsenale.gates.slices import MISSING, SliceCheck, check_slices, slice_labels


@pytest.fixture(scope="module")
def regions() -> dict[str, Any]:
    """In the south, the label follows another rule over half the feature space. The champion, a linear
    model given region interactions, learnt it; the candidate, a random forest far better elsewhere, was
    trained on data that lost the south."""
    X, y = make_classification(n_samples=3000, n_features=8, n_informative=5, random_state=3)
    region = np.random.default_rng(3).choice(["north", "east", "west", "south"], size=len(y),
                                             p=[0.32, 0.31, 0.31, 0.06])
    south = region == "south"
    y = np.where(south & (X[:, 0] > 0), 1 - y, y)
    Xr = np.column_stack([X, south, X * south[:, None], (X[:, 0] > 0) & south])
    X_tr, X_te, y_tr, y_te, r_tr, r_te = train_test_split(Xr, y, region, test_size=0.5, random_state=0,
                                                          stratify=region)
    champion = LogisticRegression(max_iter=3000).fit(X_tr, y_tr)
    kept = r_tr != "south"
    candidate = RandomForestClassifier(n_estimators=60, random_state=0).fit(X_tr[kept][:, :8], y_tr[kept])
    return {"y": y_te, "frame": pd.DataFrame({"region": r_te, "x0": X_te[:, 0]}),
            "candidate": candidate.predict(X_te[:, :8]), "champion": champion.predict(X_te)}


def test_a_regressed_slice_fails_while_the_overall_metric_is_fine(regions: dict[str, Any]) -> None:
    y, candidate, champion = regions["y"], regions["candidate"], regions["champion"]
    assert accuracy_score(y, candidate) > accuracy_score(y, champion) + 0.1  # better overall, by far
    check = SliceCheck(by="region", metric="accuracy", min=0.5, max_regression=0.05)
    (result,) = check_slices(check, y, candidate, champion, regions["frame"])
    assert result.name == "slices.region.accuracy" and not result.passed
    table = {row["slice"]: row for row in result.details["slices"]}
    assert list(table) == ["east", "north", "south", "west"]
    assert [s for s, row in table.items() if not row["passed"]] == ["south"]
    south = table["south"]
    assert south["judged"] and south["gain"] < -0.1 and "more than the allowed 0.05" in south["reason"]
    assert table["north"]["gain"] > 0.1
    assert result.details["worst_slice"] == "south" and result.candidate == south["candidate"]
    assert result.champion == south["champion"]
    assert "'south'" in result.message and "worse by" in result.message
    assert sum(row["rows"] for row in table.values()) == len(y)
    json.dumps(result.details, allow_nan=False)
    # the other way round, every region but the south regresses
    (reverse,) = check_slices(check, y, champion, candidate, regions["frame"])
    assert [row["slice"] for row in reverse.details["slices"] if not row["passed"]] == ["east", "north", "west"]


def test_the_floor_and_the_champion_are_judged_separately(regions: dict[str, Any]) -> None:
    y, candidate, frame = regions["y"], regions["candidate"], regions["frame"]
    floor = SliceCheck(by="region", metric="accuracy", min=0.8)
    (first,) = check_slices(floor, y, candidate, None, frame)  # a first model: the floor only
    assert not first.passed and "'south': accuracy" in first.message and "is not at least 0.8" in first.message
    assert first.champion is None
    (loose,) = check_slices(floor.model_copy(update={"min": 0.5}), y, candidate, None, frame)
    assert loose.passed, loose.message
    (unjudged,) = check_slices(SliceCheck(by="region", metric="accuracy", max_regression=0.0), y, candidate, None,
                               frame)
    assert unjudged.passed and "no champion yet" in unjudged.message


def test_values_restrict_the_slices_and_a_typo_is_an_error(regions: dict[str, Any]) -> None:
    check = SliceCheck(by="region", metric="accuracy", max_regression=0.05, values=["north", "east"])
    (result,) = check_slices(check, regions["y"], regions["candidate"], regions["champion"], regions["frame"])
    assert result.passed and [row["slice"] for row in result.details["slices"]] == ["east", "north"]
    with pytest.raises(InvalidInput) as e:
        check_slices(check.model_copy(update={"values": ["North"]}), regions["y"], regions["candidate"],
                     regions["champion"], regions["frame"])
    assert e.value.field == "values" and "'north'" in e.value.message


def test_a_numeric_column_is_cut_into_labelled_quantile_bins(regions: dict[str, Any]) -> None:
    check = SliceCheck(by="x0", metric="accuracy", max_regression=0.05)
    (result,) = check_slices(check, regions["y"], regions["candidate"], regions["champion"], regions["frame"])
    rows = result.details["slices"]
    assert len(rows) == 4 and rows[0]["slice"].startswith("[") and all(r["slice"].startswith("(") for r in rows[1:])
    assert all(abs(r["rows"] - len(regions["y"]) / 4) <= 2 for r in rows)
    labels, order = slice_labels(pd.Series([1, 2, 3, 4, 5, 6, 7, 8, None]), bins=4)
    assert order == ["[1, 2.75]", "(2.75, 4.5]", "(4.5, 6.25]", "(6.25, 8]", MISSING]
    assert labels.tolist() == ["[1, 2.75]"] * 2 + ["(2.75, 4.5]"] * 2 + ["(4.5, 6.25]"] * 2 + ["(6.25, 8]"] * 2 + [
        MISSING]
    # bins are right-closed: a value on an edge belongs to the bin below it
    assert slice_labels(pd.Series([1, 2, 3, 4, 5, 6, 7, 8, 9]), bins=2)[0].tolist() == ["[1, 5]"] * 5 + [
        "(5, 9]"] * 4
    assert slice_labels(pd.Series([1.0, 1.0001, 1.0002, 1.0003, 1.0004]), bins=2)[1] == ["[1, 1.0002]",
                                                                                        "(1.0002, 1.0004]"]


def test_codes_booleans_and_categories_are_sliced_by_value() -> None:
    assert slice_labels(pd.Series([3, 1, 2, None, 1]))[1] == ["1", "2", "3", MISSING]
    assert slice_labels(pd.Series([True, False, True]))[1] == ["False", "True"]
    column = pd.Series(pd.Categorical(["low", "high", "mid", "low"], categories=["low", "mid", "high"]))
    assert slice_labels(column)[1] == ["low", "mid", "high"]
    assert slice_labels(pd.Series(["b", 1, "a", None]))[1] == ["1", "a", "b", MISSING]


def test_an_undefined_metric_or_a_small_slice_is_not_judged() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    scores = model.predict_proba(X_te)[:, 1]
    cohort = np.where(np.arange(len(y_te)) % 2 == 0, "even", "odd").astype(object)
    cohort[np.flatnonzero(y_te == 1)[:40]] = "benign-only"  # one class: ROC AUC is undefined there
    cohort[:5] = None
    frame = pd.DataFrame({"cohort": cohort})
    check = SliceCheck(by="cohort", metric="roc_auc", min=0.9, max_regression=0.01)
    (result,) = check_slices(check, y_te, scores, scores * 0.9, frame)
    table = {row["slice"]: row for row in result.details["slices"]}
    assert result.passed, result.message
    assert table["benign-only"]["judged"] is False and "undefined" in table["benign-only"]["reason"]
    assert table["benign-only"]["candidate"] is None and table["benign-only"]["passed"] is None
    assert table[MISSING] == {"slice": MISSING, "rows": 5, "candidate": None, "champion": None, "gain": None,
                              "judged": False, "passed": None, "reason": "fewer than 30 rows"}
    assert "2 slice(s) not judged" in result.message
    json.dumps(result.details, allow_nan=False)
    # a loss: `min` is a ceiling
    (loss,) = check_slices(SliceCheck(by="cohort", metric="log_loss", min=0.01), y_te, scores, None, frame)
    assert not loss.passed and "is not at most 0.01" in loss.message


def test_a_metric_that_raises_on_one_slice_leaves_that_slice_unjudged(regions: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Older scikit-learn raised, rather than warned, on a one-class ROC AUC; either way the slice is not
    judged, and the others are."""
    def strict_auc(y: np.ndarray, p: np.ndarray) -> float:
        if len(np.unique(y)) < 2:
            raise ValueError("Only one class present in y_true")
        return float(roc_auc_score(y, p))

    monkeypatch.setitem(METRICS, "strict_auc", Metric("strict_auc", strict_auc, True, "scores"))
    y = regions["y"]
    region = regions["frame"]["region"].to_numpy().copy()
    region[np.flatnonzero(y == 0)[:40]] = "negatives"
    frame = regions["frame"].assign(region=region)
    check = SliceCheck(by="region", metric="strict_auc", min=0.0)
    (result,) = check_slices(check, y, regions["candidate"].astype(float), None, frame)
    table = {row["slice"]: row for row in result.details["slices"]}
    assert result.passed, result.message
    assert all(row["judged"] for name, row in table.items() if name != "negatives")
    assert table["negatives"]["judged"] is False and table["negatives"]["candidate"] is None
    assert "undefined" in table["negatives"]["reason"]


def test_a_metric_wrong_for_the_whole_data_is_one_clear_error(regions: dict[str, Any]) -> None:
    y = np.where(np.arange(len(regions["y"])) % 5 == 0, 2, regions["y"])  # three classes: f1 is binary-only
    with pytest.raises(InvalidInput) as e:
        check_slices(SliceCheck(by="region", metric="f1", min=0.5), y, regions["candidate"], None,
                     regions["frame"])
    assert e.value.field == "metric" and "f1 cannot be computed" in e.value.message


@pytest.mark.parametrize("case, field", [
    ("missing column", "by"),
    ("short predictions", "data"),
    ("short frame", "data"),
    ("one small slice", "by"),
    ("empty", "data"),
])
def test_bad_input_is_a_clear_error(regions: dict[str, Any], case: str, field: str) -> None:
    y, candidate, champion, frame = regions["y"], regions["candidate"], regions["champion"], regions["frame"]
    check = SliceCheck(by="region", metric="accuracy", min=0.5)
    if case == "missing column":
        check = SliceCheck(by="country", metric="accuracy", min=0.5)
    elif case == "short predictions":
        champion = champion[:-1]
    elif case == "short frame":
        frame = frame.iloc[1:]
    elif case == "one small slice":
        y, candidate, champion, frame = y[:20], candidate[:20], champion[:20], frame.iloc[:20].assign(region="x")
    elif case == "empty":
        y, candidate, champion, frame = y[:0], candidate[:0], champion[:0], frame.iloc[:0]
    with pytest.raises(InvalidInput) as e:
        check_slices(check, y, candidate, champion, frame)
    assert e.value.field == field, e.value.message


@pytest.mark.parametrize("table", [
    {"by": "region", "metric": "accuracy", "min": 0.5, "threshold": 1},  # unknown key
    {"by": "region", "metric": "wizardry", "min": 0.5},                 # unknown metric
    {"by": "region", "min": 0.5},                                       # no metric
    {"by": "region", "metric": "accuracy"},                             # judges nothing
    {"by": "", "metric": "accuracy", "min": 0.5},
    {"by": "region", "metric": "accuracy", "min": 0.5, "bins": 1},
    {"by": "region", "metric": "accuracy", "min": 0.5, "values": []},
    {"by": "region", "metric": "accuracy", "max_regression": -0.1},
    {"by": "region", "metric": "accuracy", "min": True},
    {"by": ["region"], "metric": "accuracy", "min": 0.5},
])
def test_a_bad_policy_table_is_a_validation_error(table: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SliceCheck.model_validate(table)


def test_toml_integers_are_numbers() -> None:
    check = SliceCheck.model_validate({"by": "region", "metric": "r2", "min": 0, "max_regression": 1})
    assert check.min == 0.0 and isinstance(check.max_regression, float) and check.bins == 4
    assert check.min_rows == 30 and check.values is None
