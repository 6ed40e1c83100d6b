"""The statistics that keep a lucky split from promoting a worse model.

Both models are scored on the same rows, so their difference is judged paired: a bootstrap of rows gives a
confidence interval for `metric(candidate) - metric(champion)` (any metric, resampling whole rows so the
pairing is kept), and McNemar's test asks whether the rows only one model gets right lean one way more
than chance allows (exact binomial below 25 discordant rows, continuity-corrected chi-square above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import Metric

__all__ = ["Interval", "McNemar", "mcnemar", "paired_bootstrap"]

MAX_ROWS_PER_CHUNK = 4_000_000  # index cells drawn at once: bounds the bootstrap's memory (~200 MB)


@dataclass(frozen=True)
class Interval:
    """The candidate's gain over the champion (positive is better) and its confidence interval."""

    gain: float
    low: float
    high: float
    confidence: float
    resamples: int


@dataclass(frozen=True)
class McNemar:
    only_candidate: int  # rows the candidate gets right and the champion wrong
    only_champion: int
    p_value: float


def _check(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    n = len(y)
    if n == 0 or len(a) != n or len(b) != n:
        raise InvalidInput(f"labels and both models' predictions must have the same, non-zero length; got "
                           f"{len(y)}, {len(a)}, {len(b)}", field="data")
    return n


def paired_bootstrap(metric: Metric, y: np.ndarray, candidate: np.ndarray, champion: np.ndarray, *,
                     resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of the candidate's gain, resampling rows with replacement (the same rows for both
    models). A resample where the metric is undefined (one class only, for ROC AUC) is skipped."""
    y, candidate, champion = np.asarray(y), np.asarray(candidate), np.asarray(champion)
    n = _check(y, candidate, champion)
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1; got {confidence}", field="confidence")
    if not 100 <= resamples <= 100_000:
        raise InvalidInput(f"resamples must be between 100 and 100000; got {resamples}", field="resamples")
    gain = metric.gain(metric(y, candidate), metric(y, champion))
    rng = np.random.default_rng(seed)
    gains: list[float] = []
    per_chunk = max(1, MAX_ROWS_PER_CHUNK // n)
    for start in range(0, resamples, per_chunk):
        rows = rng.integers(0, n, size=(min(per_chunk, resamples - start), n))
        if metric.weighted is not None:
            # Each resample as counts per row: every resample of the chunk in a few matrix products.
            k = len(rows)
            counts = np.bincount((rows + n * np.arange(k)[:, None]).ravel(), minlength=k * n)
            W = counts.reshape(k, n).astype(float)
            a, b = metric.weighted(y, candidate, W), metric.weighted(y, champion, W)
            if a is not None and b is not None:
                chunk = np.asarray(metric.gain(a, b))  # type: ignore[arg-type]
                gains.extend(chunk[np.isfinite(chunk)].tolist())
                continue
        for idx in rows:
            yy = y[idx]
            try:
                gains.append(metric.gain(metric(yy, candidate[idx]), metric(yy, champion[idx])))
            except ValueError:  # e.g. ROC AUC of a resample holding one class
                continue
    if len(gains) < resamples // 2:
        raise InvalidInput(f"{metric.name} is undefined on most resamples of these {n} rows (too few rows of "
                           "one class?)", field="data")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return Interval(gain=gain, low=float(low), high=float(high), confidence=confidence, resamples=len(gains))


def mcnemar(y: np.ndarray, candidate: np.ndarray, champion: np.ndarray) -> McNemar:
    """Two-sided McNemar test on the rows the two classifiers disagree about being right."""
    y, candidate, champion = np.asarray(y), np.asarray(candidate), np.asarray(champion)
    _check(y, candidate, champion)
    right_a, right_b = candidate == y, champion == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        p = 1.0
    elif b + c < 25:
        p = float(stats.binomtest(b, b + c, 0.5).pvalue)
    else:
        chi2 = (abs(b - c) - 1) ** 2 / (b + c)
        p = float(stats.chi2.sf(chi2, 1))
    return McNemar(only_candidate=b, only_champion=c, p_value=min(1.0, p))
