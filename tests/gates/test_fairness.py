"""Fairness gates on scikit-learn's breast-cancer data with a synthetic, seeded group: a model trained on
labels that rarely approved group B is refused, a model that never sees the group passes, Fairlearn's
numbers match a hand computation, and bad input is a clear error naming the field."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference  # type: ignore[import-untyped]
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from arsenale.errors import InvalidInput
from arsenale.gates.fairness import MISSING, FairnessCheck, check_fairness
from arsenale.gates.metrics import METRICS, Metric

ALL_LIMITS = {"max_demographic_parity_difference": 0.15, "max_equalized_odds_difference": 0.1,
              "max_metric_gap": 0.05, "max_regression": 0.02}


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(7)
    group = rng.choice(["A", "B"], size=len(y))
    age = rng.choice(["young", "old"], size=len(y))
    Xg = np.column_stack([X, group == "B"])
    X_tr, X_te, y_tr, y_te, g_tr, g_te, _, a_te = train_test_split(Xg, y, group, age, test_size=0.5, stratify=y,
                                                                   random_state=0)
    fair = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr[:, :-1], y_tr)
    # historical decisions that approved only one in five of group B's positives
    drop = (g_tr == "B") & (np.random.default_rng(8).random(len(y_tr)) < 0.8)
    biased = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, np.where(drop, 0, y_tr))
    return {"y": y_te, "frame": pd.DataFrame({"group": g_te, "age": a_te}),
            "fair": fair.predict(X_te[:, :-1]), "fair_scores": fair.predict_proba(X_te[:, :-1])[:, 1],
            "biased": biased.predict(X_te), "biased_scores": biased.predict_proba(X_te)[:, 1]}


def test_a_biased_candidate_fails_every_limit_and_names_group_b(models: dict[str, Any]) -> None:
    check = FairnessCheck(sensitive="group", **ALL_LIMITS)
    results = check_fairness(check, models["y"], models["biased"], models["fair"], models["frame"])
    assert [r.name for r in results] == ["fairness.group.demographic_parity_difference",
                                         "fairness.group.equalized_odds_difference", "fairness.group.accuracy_gap",
                                         "fairness.group.accuracy_worst_group"]
    assert not any(r.passed for r in results), [r.message for r in results]
    for r in results:
        assert r.details["worst_group"] == "B" and "'B'" in r.message, r.message
    parity = results[0]
    assert parity.candidate is not None and parity.candidate > 0.3 and "> limit 0.15" in parity.message
    table = parity.details["groups"]
    assert table["B"]["candidate"]["selection_rate"] < table["A"]["candidate"]["selection_rate"] - 0.3
    assert "worse by more than the allowed 0.02" in results[3].message


def test_a_fair_candidate_passes_against_the_biased_champion(models: dict[str, Any]) -> None:
    check = FairnessCheck(sensitive="group", **ALL_LIMITS)
    results = check_fairness(check, models["y"], models["fair"], models["biased"], models["frame"])
    assert all(r.passed for r in results), [r.message for r in results]
    parity = results[0]
    assert parity.champion is not None and parity.candidate is not None and parity.champion > parity.candidate
    assert "≤ limit 0.15" in parity.message
    regression = results[3]
    assert regression.details["gain"] > 0.1 and regression.champion == pytest.approx(
        min(g["champion"]["metric"] for g in regression.details["groups"].values()))
    json.dumps(regression.details, allow_nan=False)  # what the report stores and draws


def test_fairlearn_values_match_a_hand_computation() -> None:
    #            A: 4 rows     B: 4 rows
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    p = np.array([1, 0, 0, 1, 1, 1, 1, 0])
    frame = pd.DataFrame({"g": ["A"] * 4 + ["B"] * 4})
    check = FairnessCheck(sensitive="g", max_demographic_parity_difference=0.5, max_equalized_odds_difference=0.5,
                          max_metric_gap=0.5, min_group_rows=1)
    parity, odds, gap = check_fairness(check, y, p, None, frame)
    # selection rate A 2/4, B 3/4; TPR A 1/2, B 2/2; FPR A 1/2, B 1/2; accuracy A 2/4, B 3/4
    assert parity.candidate == pytest.approx(0.25) and parity.passed
    assert odds.candidate == pytest.approx(0.5) and odds.passed
    assert "TPR from 0.500 ('A') to 1.000 ('B')" in odds.message and odds.details["worst_group"] == "A"
    assert gap.candidate == pytest.approx(0.25) and gap.details["worst_group"] == "A"
    assert parity.details["groups"]["A"]["candidate"] == pytest.approx(
        {"selection_rate": 0.5, "tpr": 0.5, "fpr": 0.5, "metric": 0.5})
    assert parity.details["groups"]["B"]["candidate"] == pytest.approx(
        {"selection_rate": 0.75, "tpr": 1.0, "fpr": 0.5, "metric": 0.75})
    strict = FairnessCheck(sensitive="g", max_demographic_parity_difference=0.24, min_group_rows=1)
    assert not check_fairness(strict, y, p, None, frame)[0].passed


def test_nulls_are_a_group_and_small_groups_are_shown_but_not_judged(models: dict[str, Any]) -> None:
    y, frame = models["y"], models["frame"].copy()
    candidate = models["fair"].copy()
    frame.loc[frame.index[:12], "group"] = None
    candidate[:12] = 1 - y[:12]  # the model fails every row with a missing attribute
    check = FairnessCheck(sensitive="group", max_metric_gap=0.05)
    (gap,) = check_fairness(check, y, candidate, None, frame)
    groups = gap.details["groups"]
    assert list(groups) == ["A", "B", MISSING]
    assert groups[MISSING] == {"rows": 12, "judged": False, "candidate": pytest.approx(
        {"metric": 0.0, "selection_rate": groups[MISSING]["candidate"]["selection_rate"], "tpr": 0.0, "fpr": 1.0})}
    assert gap.passed and "1 group(s) below 30 rows not judged: '(missing)' (12)" in gap.message
    (judged,) = check_fairness(check.model_copy(update={"min_group_rows": 10}), y, candidate, None, frame)
    assert not judged.passed and judged.details["worst_group"] == MISSING


def test_several_columns_make_intersectional_groups(models: dict[str, Any]) -> None:
    check = FairnessCheck(sensitive=["group", "age"], max_demographic_parity_difference=0.15)
    (parity,) = check_fairness(check, models["y"], models["biased"], models["fair"], models["frame"])
    assert parity.name == "fairness.group+age.demographic_parity_difference"
    assert set(parity.details["groups"]) == {"group=A, age=old", "group=A, age=young", "group=B, age=old",
                                             "group=B, age=young"}
    assert not parity.passed and parity.details["worst_group"].startswith("group=B")


def test_a_score_metric_reads_the_scores_and_skips_groups_where_it_is_undefined(models: dict[str, Any]) -> None:
    y, frame = models["y"], models["frame"].copy()
    check = FairnessCheck(sensitive="group", metric="roc_auc", max_metric_gap=0.05, max_regression=0.01)
    with pytest.raises(InvalidInput) as e:
        check_fairness(check, y, models["fair"], None, frame)
    assert e.value.field == "candidate_scores"
    gap, worst = check_fairness(check, y, models["fair"], models["biased"], frame,
                                candidate_scores=models["fair_scores"], champion_scores=models["biased_scores"])
    assert gap.passed and worst.passed, (gap.message, worst.message)
    assert gap.candidate is not None and gap.candidate < 0.05
    # a third group holding positives only: ROC AUC is undefined there, and the group is left out, not NaN
    positives = np.flatnonzero(y == 1)[:40]
    frame.loc[frame.index[positives], "group"] = "C"
    gap, _ = check_fairness(check, y, models["fair"], models["biased"], frame,
                            candidate_scores=models["fair_scores"], champion_scores=models["biased_scores"])
    assert gap.details["groups"]["C"]["judged"] and gap.details["groups"]["C"]["candidate"]["metric"] is None
    assert "roc_auc undefined on 'C'" in gap.message
    json.dumps(gap.details, allow_nan=False)


def test_equalized_odds_leaves_out_a_group_without_positives(models: dict[str, Any]) -> None:
    """Fairlearn counts the TPR of a group without positives as 0, which would fail any fair model."""
    y, candidate, frame = models["y"], models["fair"], models["frame"].copy()
    frame.loc[frame.index[np.flatnonzero(y == 0)[:40]], "group"] = "C"
    check = FairnessCheck(sensitive="group", max_equalized_odds_difference=0.1)
    (odds,) = check_fairness(check, y, candidate, None, frame)
    c = odds.details["groups"]["C"]
    assert c["judged"] and c["candidate"]["tpr"] is None and c["candidate"]["fpr"] is not None
    assert odds.passed and "1 group(s) lacking one class left out: 'C'" in odds.message
    groups = frame["group"].to_numpy()
    kept = groups != "C"
    assert odds.candidate == pytest.approx(
        equalized_odds_difference(y[kept], candidate[kept], sensitive_features=groups[kept]))
    assert equalized_odds_difference(y, candidate, sensitive_features=groups) > 0.9


def test_a_metric_that_raises_on_one_group_leaves_that_group_out(models: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Older scikit-learn raised, rather than warned, on a one-class ROC AUC."""
    def strict_auc(y: np.ndarray, p: np.ndarray) -> float:
        if len(np.unique(y)) < 2:
            raise ValueError("Only one class present in y_true")
        return float(roc_auc_score(y, p))

    monkeypatch.setitem(METRICS, "strict_auc", Metric("strict_auc", strict_auc, True, "scores"))
    y, frame = models["y"], models["frame"].copy()
    frame.loc[frame.index[np.flatnonzero(y == 1)[:40]], "group"] = "C"
    check = FairnessCheck(sensitive="group", metric="strict_auc", max_metric_gap=0.05)
    (gap,) = check_fairness(check, y, models["fair"], None, frame, candidate_scores=models["fair_scores"])
    assert gap.details["groups"]["C"]["candidate"]["metric"] is None and gap.passed
    assert "strict_auc undefined on 'C'" in gap.message


def test_without_a_champion_the_regression_is_not_judged(models: dict[str, Any]) -> None:
    check = FairnessCheck(sensitive="group", max_regression=0.0)
    (worst,) = check_fairness(check, models["y"], models["biased"], None, models["frame"])
    assert worst.passed and "no champion yet" in worst.message and worst.champion is None
    assert "champion" not in worst.details["groups"]["A"]


@pytest.mark.parametrize("case, field", [
    ("missing column", "sensitive"),
    ("short predictions", "data"),
    ("short frame", "data"),
    ("three classes", "y"),
    ("scores for classes", "candidate"),
    ("one small group", "sensitive"),
    ("one group only", "sensitive"),
])
def test_bad_input_is_a_clear_error(models: dict[str, Any], case: str, field: str) -> None:
    y, candidate, champion, frame = models["y"], models["fair"], models["biased"], models["frame"]
    check = FairnessCheck(sensitive="group", max_demographic_parity_difference=0.1)
    if case == "missing column":
        check = FairnessCheck(sensitive=["group", "sex"], max_demographic_parity_difference=0.1)
    elif case == "short predictions":
        candidate = candidate[:-1]
    elif case == "short frame":
        frame = frame.iloc[:-1]
    elif case == "three classes":
        y = np.where(np.arange(len(y)) % 7 == 0, 2, y)
    elif case == "scores for classes":
        candidate = models["fair_scores"]
    elif case == "one small group":
        y, candidate, champion, frame = y[:20], candidate[:20], None, frame.iloc[:20].assign(group="A")
    elif case == "one group only":
        frame = frame.assign(group="A")
    with pytest.raises(InvalidInput) as e:
        check_fairness(check, y, candidate, champion, frame)
    assert e.value.field == field, e.value.message
    if case == "three classes":
        assert "binary 0/1 labels" in e.value.message and "3 distinct values" in e.value.message
    if case == "missing column":
        assert "'sex'" in e.value.message


def test_a_gap_on_multiclass_labels_needs_no_binary_labels(models: dict[str, Any]) -> None:
    y = np.where(np.arange(len(models["y"])) % 7 == 0, 2, models["y"])
    (gap,) = check_fairness(FairnessCheck(sensitive="group", max_metric_gap=0.2), y, models["fair"], None,
                            models["frame"])
    assert gap.candidate is not None and gap.details["groups"]["A"]["candidate"]["tpr"] is None
    with pytest.raises(InvalidInput) as e:  # f1 is binary-only in the registry: said up front, not per group
        check_fairness(FairnessCheck(sensitive="group", metric="f1", max_metric_gap=0.2), y, models["fair"], None,
                       models["frame"])
    assert e.value.field == "metric"


@pytest.mark.parametrize("table", [
    {"sensitive": "group", "max_metric_gap": 0.1, "threshold": 0.1},         # unknown key
    {"sensitive": "group", "metric": "wizardry", "max_metric_gap": 0.1},     # unknown metric
    {"sensitive": "group", "metric": "rmse", "max_metric_gap": 0.1},         # not a classification metric
    {"sensitive": "group"},                                                  # judges nothing
    {"sensitive": [], "max_metric_gap": 0.1},
    {"sensitive": ["a", "a"], "max_metric_gap": 0.1},
    {"sensitive": "group", "max_metric_gap": -0.1},
    {"sensitive": "group", "max_metric_gap": True},
    {"sensitive": "group", "max_metric_gap": "0.1"},
    {"sensitive": "group", "max_metric_gap": 0.1, "min_group_rows": 0},
])
def test_a_bad_policy_table_is_a_validation_error(table: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FairnessCheck.model_validate(table)


def test_toml_integers_are_numbers() -> None:
    table = tomllib.loads('sensitive = ["sex", "race"]\nmax_demographic_parity_difference = 0\n'
                          'max_regression = 1\n')
    check = FairnessCheck.model_validate(table)
    assert check.max_demographic_parity_difference == 0.0 and isinstance(check.max_regression, float)
    assert check.columns == ["sex", "race"] and check.metric == "accuracy" and check.min_group_rows == 30
