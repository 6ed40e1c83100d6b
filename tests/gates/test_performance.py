"""Performance gates on scikit-learn's bundled breast-cancer data: a better candidate passes, a worse one and
a lucky one are refused, a first model meets absolute thresholds only, and bad policies are clear errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import get_metric
from arsenale.gates.performance import check_performance
from arsenale.gates.policy import PerformanceCheck, load_policy
from arsenale.gates.stats import mcnemar, paired_bootstrap


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
    weak = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr[:, [9, 19]], y_tr)
    return {"y": y_te, "good": good.predict_proba(X_te)[:, 1], "weak": weak.predict_proba(X_te[:, [9, 19]])[:, 1]}


def test_a_better_candidate_passes_and_a_worse_one_is_refused(models: dict[str, Any]) -> None:
    check = PerformanceCheck(metric="roc_auc", min=0.9, non_inferiority_margin=0.0)
    better = check_performance(check, models["y"], models["good"], models["weak"])
    assert better.passed and better.interval is not None and better.interval.low > 0, better.message
    worse = check_performance(check, models["y"], models["weak"], models["good"])
    assert not worse.passed and "may be worse" in worse.message and "is not at least 0.9" in worse.message


def test_a_candidate_equal_to_the_champion_is_not_better(models: dict[str, Any]) -> None:
    same = check_performance(PerformanceCheck(metric="accuracy", min_gain=0.01), models["y"],
                             models["good"] > 0.5, models["good"] > 0.5)
    assert not same.passed and same.interval is not None and same.interval.gain == 0
    assert same.mcnemar is not None and same.mcnemar.p_value == 1.0


def test_a_lucky_split_does_not_promote(models: dict[str, Any]) -> None:
    """A candidate that wins a handful of rows by chance: its point gain is positive, its interval is not."""
    y = models["y"][:60]
    champion = models["good"][:60] > 0.5
    candidate = champion.copy()
    wrong = np.flatnonzero(candidate != y)[:2]
    candidate[wrong] = y[wrong]  # fixes two rows...
    right = np.flatnonzero(candidate == y)[:1]
    candidate[right] = 1 - y[right]  # ...and breaks one
    result = check_performance(PerformanceCheck(metric="accuracy", non_inferiority_margin=0.0), y, candidate,
                               champion)
    assert result.interval is not None and result.interval.gain > 0 and result.interval.low < 0
    assert not result.passed and result.mcnemar is not None and result.mcnemar.p_value > 0.5


def test_the_first_model_meets_absolute_thresholds_only(models: dict[str, Any]) -> None:
    first = check_performance(PerformanceCheck(metric="roc_auc", min=0.95), models["y"], models["good"], None)
    assert first.passed and "no champion yet" in first.message and first.interval is None
    low = check_performance(PerformanceCheck(metric="log_loss", min=0.01), models["y"], models["good"], None)
    assert not low.passed and "at most" in low.message  # a loss threshold is a ceiling


def test_the_bootstrap_interval_covers_the_gain_and_mcnemar_matches_the_exact_test() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.9, y, 1 - y)  # ~90% right
    b = np.where(rng.random(400) < 0.8, y, 1 - y)  # ~80% right
    accuracy = get_metric("accuracy")
    interval = paired_bootstrap(accuracy, y, a, b, resamples=500)
    assert interval.low < interval.gain < interval.high and interval.low > 0
    small = mcnemar(y[:40], a[:40], b[:40])
    discordant = small.only_candidate + small.only_champion
    assert discordant < 25
    assert small.p_value == pytest.approx(stats.binomtest(small.only_candidate, discordant, 0.5).pvalue)


@pytest.mark.parametrize("text, field", [
    ('[[performance]]\nmetric = "wizardry"\n', "policy.performance[0].metric"),
    ('[[performance]]\nmetric = "roc_auc"\nmin = "high"\n', "policy.performance[0].min"),
    ('[[performance]]\nmetric = "roc_auc"\nthreshold = 1\n', "policy.performance[0].threshold"),
    ('[[performance]]\nmetric = "roc_auc"\nconfidence = 1.5\n', "policy.performance[0].confidence"),
    ('[fairness]\n', "policy.fairness"),
    ('[promote]\nalias = 3\n', "policy.promote.alias"),
    ('[[performance]]\nmetric = "accuracy"\n[promote]\nalias = "challenger"\nwhen = "always"\n',
     "policy.promote.when"),
    ("", "policy"),
    ("[[performance]\n", "policy"),
])
def test_bad_policies_name_the_key(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        load_policy(text)
    assert e.value.field == field, e.value.message


def test_a_policy_file(tmp_path: Any) -> None:
    path = tmp_path / "gates.toml"
    path.write_text('[[performance]]\nmetric = "roc_auc"\nmin = 1\nnon_inferiority_margin = 0.01\n\n'
                    '[promote]\nalias = "challenger"\n')
    policy = load_policy(path)
    assert policy.promote is not None and policy.promote.alias == "challenger"
    assert policy.performance[0].min == 1.0
    with pytest.raises(InvalidInput, match="no policy file"):
        load_policy(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", sorted(get_metric.__globals__["METRICS"]))
def test_every_resample_computed_at_once_equals_the_metric_on_that_resample(name: str) -> None:
    """The bootstrap's weighted path (one row of counts per resample) gives what the metric gives on the rows
    the resample drew, ties and single-class resamples included."""
    metric = get_metric(name)
    rng = np.random.default_rng(3)
    n = 60
    y = rng.integers(0, 2, n) if metric.reads != "values" else rng.normal(size=n)
    if metric.reads == "scores":
        predicted = np.round(rng.random(n), 1)  # many ties
    elif metric.reads == "classes":
        predicted = rng.integers(0, 2, n)
    else:
        predicted = y + rng.normal(scale=0.5, size=n)
    rows = rng.integers(0, n, size=(200, n))
    rows[0] = np.flatnonzero(y == y[0])[0]  # one resample of a single row: one class only
    W = np.vstack([np.bincount(r, minlength=n) for r in rows]).astype(float)
    fast = metric.weighted(y, predicted, W)  # type: ignore[misc]
    assert fast is not None
    for i, idx in enumerate(rows):
        try:
            with warnings.catch_warnings():  # a single class, undefined metrics: what the loop ignores
                warnings.simplefilter("ignore")
                expected = metric(y[idx], predicted[idx])
        except ValueError:
            expected = float("nan")
        if name == "r2" and np.ptp(y[idx]) == 0:  # sklearn's own rounding makes 0 a tiny spread here
            expected = float(np.all(predicted[idx] == y[idx]))
        assert fast[i] == pytest.approx(expected, abs=1e-9, nan_ok=True), (i, fast[i], expected)


def test_a_bootstrap_of_many_rows_takes_seconds_not_minutes() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    y = rng.integers(0, 2, n)
    a, b = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1), rng.random(n)
    import time

    started = time.perf_counter()
    interval = paired_bootstrap(get_metric("roc_auc"), y, a, b, resamples=500)
    # One resample at a time this took about 30 s on a quiet machine; all at once, about 1 s.
    assert interval.low > 0 and interval.resamples == 500 and time.perf_counter() - started < 20
