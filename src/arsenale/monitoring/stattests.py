"""The drift statistics, as pure functions over sorted values or aligned bin counts.

Each function is the textbook definition (and the one scipy implements) so that a drift
score means what a practitioner expects; the tests hold them to scipy on known inputs.
Functions that take counts expect two aligned non-negative integer arrays (the same bins
or categories, reference first) with at least one value on each side.

Conventions, where the textbooks leave a choice:

- Chi-squared is Pearson's test of homogeneity on the 2×k table of counts
  (`scipy.stats.chi2_contingency(correction=False)`): both samples carry noise, so a
  goodness-of-fit test against the reference proportions would overstate drift.
- The Z-test compares two proportions with the pooled variance; its p-value equals the
  chi-squared test's on the 2×2 table.
- PSI and Kullback–Leibler need every bin non-empty on both sides: an empty bin counts as
  a share of `EMPTY_SHARE` (0.01%), the usual practice, so one unseen category scores
  high but finite. Jensen–Shannon and Hellinger need no such floor.
- Jensen–Shannon is the distance (square root of the divergence) with natural
  logarithms, like `scipy.spatial.distance.jensenshannon`; Hellinger is normalised to
  [0, 1]: sqrt(1 − Σ sqrt(p·q)).
- Binned approximations say how far they can be from the exact statistic
  (`Stat.error_bound`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "EMPTY_SHARE", "METHODS", "Method", "Stat", "anderson", "chisquare", "hellinger", "jensenshannon",
    "kl_div", "ks", "ks_binned", "method", "psi", "wasserstein", "wasserstein_binned", "z_test",
]

EMPTY_SHARE = 1e-4


@dataclass(frozen=True)
class Stat:
    statistic: float
    p_value: float | None = None
    error_bound: float | None = None


@dataclass(frozen=True)
class Method:
    """A drift method: what it reports, its default threshold and which way drift lies."""

    name: str
    title: str
    kind: Literal["p_value", "distance"]
    threshold: float
    inclusive: bool  # distances: drift at score ≥ threshold (True) or only > threshold (False)
    numeric: bool
    categorical: bool

    def drifted(self, score: float, threshold: float) -> bool:
        if self.kind == "p_value":
            return score < threshold
        return score >= threshold if self.inclusive else score > threshold

    @property
    def rule(self) -> str:
        if self.kind == "p_value":
            return "p_value < threshold"
        return "statistic >= threshold" if self.inclusive else "statistic > threshold"


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ks", "two-sample Kolmogorov–Smirnov", "p_value", 0.05, False, True, False),
    Method("chisquare", "chi-squared test of homogeneity", "p_value", 0.05, False, True, True),
    Method("z", "Z-test for two proportions", "p_value", 0.05, False, True, True),
    Method("anderson", "k-sample Anderson–Darling", "p_value", 0.05, False, True, False),
    Method("wasserstein", "Wasserstein distance normed by the reference std", "distance", 0.1, False,
           True, False),
    Method("jensenshannon", "Jensen–Shannon distance", "distance", 0.1, False, True, True),
    Method("psi", "population stability index", "distance", 0.1, True, True, True),
    Method("kl_div", "Kullback–Leibler divergence of the reference from the current", "distance", 0.1,
           True, True, True),
    Method("hellinger", "Hellinger distance", "distance", 0.1, True, True, True),
)}

_ALIASES = {"kolmogorov_smirnov": "ks", "chi2": "chisquare", "chi_squared": "chisquare", "z_test": "z",
            "anderson_darling": "anderson", "ad": "anderson", "wasserstein_distance": "wasserstein",
            "js": "jensenshannon", "jensen_shannon": "jensenshannon", "kl": "kl_div",
            "kullback_leibler": "kl_div"}


def method(name: str) -> Method | None:
    """The method a user's name means (case, spaces and dashes ignored), or None."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return METHODS.get(_ALIASES.get(key, key))


# ---------------------------------------------------------------- on values

def ks(reference: np.ndarray, current: np.ndarray) -> Stat:
    """scipy's exact p-value for small samples; when that fails it falls back to the
    asymptotic one and warns, which is its documented behaviour, not a problem of the data."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = stats.ks_2samp(reference, current)
    return Stat(float(r.statistic), float(r.pvalue))


def anderson(reference: np.ndarray, current: np.ndarray) -> Stat:
    """scipy's table of p-values stops at 0.001 and 0.25; beyond, the bound is reported."""
    from scipy import stats

    if np.ptp(reference) == 0 and np.ptp(current) == 0 and reference[0] == current[0]:
        return Stat(0.0, 1.0)  # one value on both sides: scipy cannot rank it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.anderson_ksamp([reference, current])
    return Stat(float(r.statistic), float(r.pvalue))


def wasserstein(reference: np.ndarray, current: np.ndarray) -> Stat:
    """W1 between two empirical distributions, from their sorted values.

    Equal sizes pair the order statistics (the optimal coupling); otherwise the integral
    of |F − G| over the merged sample, as scipy computes it."""
    u, v = reference, current
    if u.size == v.size:
        diff = np.subtract(u, v)
        np.abs(diff, out=diff)
        return Stat(float(diff.mean()))
    merged = np.concatenate([u, v])
    merged.sort(kind="stable")  # two sorted runs: a merge
    deltas = np.diff(merged)
    at = merged[:-1]
    del merged
    cdf = np.searchsorted(u, at, side="right") / u.size
    cdf -= np.searchsorted(v, at, side="right") / v.size
    np.abs(cdf, out=cdf)
    cdf *= deltas
    return Stat(float(cdf.sum()))


# ---------------------------------------------------------------- on counts

def _shares(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype="float64")
    return c / c.sum()


def ks_binned(reference: np.ndarray, current: np.ndarray) -> Stat:
    """KS on two binned samples: the largest CDF gap at the bin edges.

    The exact statistic can only be larger, by at most the largest share one bin holds on
    either side (within a bin each CDF rises by its bin's share); the p-value is Smirnov's
    asymptotic one for that gap."""
    from scipy import stats

    n, m = int(reference.sum()), int(current.sum())
    p, q = _shares(reference), _shares(current)
    d = float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    bound = float(max(p.max(), q.max()))
    en = round(n * m / (n + m))
    p_value = float(stats.kstwo.sf(d, max(en, 1)))
    return Stat(d, min(max(p_value, 0.0), 1.0), bound)


def wasserstein_binned(reference: np.ndarray, current: np.ndarray, width: float) -> Stat:
    """W1 with every value moved to the middle of its bin (bins of equal `width`).

    Moving a value by at most width/2 moves W1 by at most width/2 per side, so the exact
    distance is within one bin width."""
    gap = np.cumsum(_shares(reference))[:-1] - np.cumsum(_shares(current))[:-1]
    return Stat(float(np.abs(gap).sum() * width), error_bound=float(width))


def chisquare(reference: np.ndarray, current: np.ndarray) -> Stat:
    table = np.vstack([reference, current]).astype("float64")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return Stat(0.0, 1.0)  # one category on both sides: nothing can have moved
    from scipy import stats

    r = stats.chi2_contingency(table, correction=False)
    return Stat(float(r.statistic), float(r.pvalue))


def z_test(reference: np.ndarray, current: np.ndarray) -> Stat:
    """Pooled two-proportion Z-test on the share of the first of two categories."""
    n, m = float(reference.sum()), float(current.sum())
    p1, p2 = float(reference[0]) / n, float(current[0]) / m
    pooled = (float(reference[0]) + float(current[0])) / (n + m)
    if pooled in (0.0, 1.0):
        return Stat(0.0, 1.0)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return Stat(z, float(math.erfc(abs(z) / math.sqrt(2))))  # 2·(1 − Φ(|z|)), without cancellation


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> Stat:
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2.0
    js = (np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))) / 2.0
    return Stat(float(np.sqrt(max(js, 0.0))))


def _floored(counts: np.ndarray) -> np.ndarray:
    s = _shares(counts)
    return np.where(s == 0, EMPTY_SHARE, s)


def psi(reference: np.ndarray, current: np.ndarray) -> Stat:
    p, q = _floored(reference), _floored(current)
    return Stat(float(np.sum((q - p) * np.log(q / p))))


def kl_div(reference: np.ndarray, current: np.ndarray) -> Stat:
    """KL(reference ‖ current) in nats, after the empty-bin floor and renormalisation."""
    p, q = _floored(reference), _floored(current)
    p, q = p / p.sum(), q / q.sum()
    return Stat(float(np.sum(_rel_entr(p, q))))


def hellinger(reference: np.ndarray, current: np.ndarray) -> Stat:
    p, q = _shares(reference), _shares(current)
    bc = float(np.sum(np.sqrt(p * q)))
    return Stat(math.sqrt(max(0.0, 1.0 - bc)))


ON_COUNTS: dict[str, Callable[[np.ndarray, np.ndarray], Stat]] = {
    "chisquare": chisquare, "z": z_test, "jensenshannon": jensenshannon, "psi": psi, "kl_div": kl_div,
    "hellinger": hellinger,
}
