"""The drift statistics against scipy and the textbook formulas, on known inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from arsenale.monitoring import stattests
from arsenale.monitoring.stattests import METHODS

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=60)
count_pairs = st.integers(min_value=2, max_value=12).flatmap(lambda k: st.tuples(
    st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
    st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(lambda c: sum(c) > 0)))


@settings(max_examples=80, deadline=None)
@given(samples, samples)
def test_wasserstein_equals_scipy(a: list[float], b: list[float]) -> None:
    u, v = np.sort(np.array(a)), np.sort(np.array(b))
    expected = stats.wasserstein_distance(a, b)
    assert stattests.wasserstein(u, v).statistic == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_wasserstein_known_values() -> None:
    assert stattests.wasserstein(np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0])).statistic == 5.0
    u, v = np.array([0.0, 1.0]), np.array([0.0, 0.0, 3.0])
    assert stattests.wasserstein(u, v).statistic == pytest.approx(stats.wasserstein_distance(u, v), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(samples, samples)
def test_ks_and_anderson_are_scipy(a: list[float], b: list[float]) -> None:
    u, v = np.array(a), np.array(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = stats.ks_2samp(u, v)
    got = stattests.ks(u, v)
    assert (got.statistic, got.p_value) == (r.statistic, r.pvalue)
    if len(set(a) | set(b)) > 1 and len(a) > 1 and len(b) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ad = stats.anderson_ksamp([u, v])
        got = stattests.anderson(u, v)
        assert got.statistic == pytest.approx(ad.statistic, rel=1e-12, abs=1e-12)
        assert got.p_value == pytest.approx(ad.pvalue)


def test_anderson_on_one_value_is_no_drift() -> None:
    assert stattests.anderson(np.ones(5), np.ones(7)).p_value == 1.0


@settings(max_examples=80, deadline=None)
@given(count_pairs)
def test_count_statistics_match_scipy_and_textbook(pair: tuple[list[int], list[int]]) -> None:
    r, c = (np.array(x, dtype=np.int64) for x in pair)
    p, q = r / r.sum(), c / c.sum()
    assert stattests.jensenshannon(r, c).statistic == pytest.approx(scipy_js(p, q), abs=1e-12)
    hell = math.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2)
    assert stattests.hellinger(r, c).statistic == pytest.approx(hell, abs=1e-7)
    pf = np.where(p == 0, stattests.EMPTY_SHARE, p)
    qf = np.where(q == 0, stattests.EMPTY_SHARE, q)
    assert stattests.psi(r, c).statistic == pytest.approx(np.sum((pf - qf) * np.log(pf / qf)), rel=1e-12, abs=1e-12)
    assert stattests.kl_div(r, c).statistic == pytest.approx(stats.entropy(pf, qf), rel=1e-9, abs=1e-12)
    table = np.vstack([r, c])[:, (r + c) > 0]
    got = stattests.chisquare(r, c)
    if table.shape[1] >= 2:
        expected = stats.chi2_contingency(table, correction=False)
        assert got.statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
        assert got.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    else:
        assert (got.statistic, got.p_value) == (0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 400), st.integers(0, 400)), st.tuples(st.integers(1, 400), st.integers(0, 400)))
def test_z_test_is_the_two_by_two_chi_squared(a: tuple[int, int], b: tuple[int, int]) -> None:
    r, c = np.array(a), np.array(b)
    z = stattests.z_test(r, c)
    table = np.vstack([r, c])
    if (table.sum(axis=0) > 0).all():
        expected = stats.chi2_contingency(table, correction=False)
        assert z.statistic ** 2 == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
        assert z.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    else:
        assert z.p_value == 1.0


def test_binned_statistics_stay_within_their_bounds() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 4000), rng.normal(0.3, 1.2, 3000)
    edges = np.linspace(-6, 7, 131)
    r, _ = np.histogram(a, edges)
    c, _ = np.histogram(b, edges)
    exact_d = stats.ks_2samp(a, b).statistic
    ks = stattests.ks_binned(r, c)
    assert ks.error_bound is not None and ks.statistic <= exact_d + 1e-12
    assert exact_d - ks.statistic <= ks.error_bound
    w = stattests.wasserstein_binned(r, c, width=edges[1] - edges[0])
    assert w.error_bound is not None
    assert abs(w.statistic - stats.wasserstein_distance(a, b)) <= w.error_bound


def test_method_names_rules_and_thresholds() -> None:
    assert stattests.method("Jensen-Shannon") is METHODS["jensenshannon"]
    assert stattests.method("KL") is METHODS["kl_div"]
    assert stattests.method("nope") is None
    ks, w, psi = METHODS["ks"], METHODS["wasserstein"], METHODS["psi"]
    assert (ks.threshold, w.threshold, psi.threshold, METHODS["jensenshannon"].threshold) == (0.05, 0.1, 0.1, 0.1)
    assert ks.drifted(0.049, 0.05) and not ks.drifted(0.05, 0.05)
    assert w.drifted(0.11, 0.1) and not w.drifted(0.1, 0.1)
    assert psi.drifted(0.1, 0.1) and not psi.drifted(0.099, 0.1)
    assert ks.rule == "p_value < threshold" and psi.rule == "statistic >= threshold"
