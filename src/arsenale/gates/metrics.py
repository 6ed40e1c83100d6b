"""The metrics a gate compares, each with its direction and what it reads (labels, scores or classes).

A metric is computed on the rows a resample picks, many times over, so each is a plain function of NumPy
arrays. Classification metrics read the predicted classes, except `roc_auc` and `log_loss`, which read the
probability of the positive class; regression metrics read the predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from arsenale.errors import InvalidInput

__all__ = ["METRICS", "Metric", "get_metric", "metric_name"]


# The same metric on many resamples at once: `W` holds one row of counts per resample (how often each row was
# drawn), so a resample's value is a weighted sum and a bootstrap is a few matrix products instead of a
# thousand calls. NaN where the metric is undefined on a resample (ROC AUC of one class only); None from
# `weighted` when these labels need the general path (multiclass F1, say).
Weighted = Callable[[np.ndarray, np.ndarray, np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    reads: str  # "classes", "scores" (probability of the positive class) or "values"
    weighted: Weighted | None = None

    def __call__(self, y: np.ndarray, predicted: np.ndarray) -> float:
        return float(self.fn(y, predicted))

    def gain(self, candidate: float, champion: float) -> float:
        """How much better the candidate is, in the metric's units (positive is better either way)."""
        return candidate - champion if self.higher_is_better else champion - candidate


def _binary(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, p: fn(y, p, zero_division=0)


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all())


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


def _w_accuracy(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (W @ (p == y).astype(float)) / W.sum(axis=1)


def _w_balanced(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    recalls = []
    for c in np.unique(y):
        support = W @ (y == c).astype(float)
        recalls.append(_ratio(W @ ((y == c) & (p == c)).astype(float), support, np.nan))
    return np.nanmean(np.vstack(recalls), axis=0)  # classes absent from a resample do not count


def _confusion(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not (_is_binary(y) and _is_binary(p)):
        return None
    yes, pos = y == 1, p == 1
    return W @ (yes & pos).astype(float), W @ (~yes & pos).astype(float), W @ (yes & ~pos).astype(float)


def _w_precision(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    c = _confusion(y, p, W)
    return None if c is None else _ratio(c[0], c[0] + c[1], 0.0)


def _w_recall(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    c = _confusion(y, p, W)
    return None if c is None else _ratio(c[0], c[0] + c[2], 0.0)


def _w_f1(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    c = _confusion(y, p, W)
    return None if c is None else _ratio(2 * c[0], 2 * c[0] + c[1] + c[2], 0.0)


def _w_roc_auc(y: np.ndarray, s: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    """The probability that a positive outranks a negative (ties count half), from the counts per group of
    equal scores, in score order; in integers, so it is exact."""
    if not _is_binary(y):
        return None
    order = np.argsort(s, kind="stable")
    s, yes = s[order], y[order] == 1
    counts = W[:, order].astype(np.int64)  # counts of draws: whole numbers
    pos = counts * yes
    neg = counts - pos
    if len(s) > 1 and (s[1:] == s[:-1]).any():  # tied scores: one group each
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        pos, neg = np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored lower than each group
    twice_wins = (pos * (2 * below + neg)).sum(axis=1)
    return _ratio(twice_wins, 2 * pos.sum(axis=1) * neg.sum(axis=1), np.nan)


def _w_mean(per_row: Callable[[np.ndarray, np.ndarray], np.ndarray]
            ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    return lambda y, p, W: (W @ per_row(y, p)) / W.sum(axis=1)


def _log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(float), 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _w_log_loss(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray | None:
    return (W @ _log_loss_rows(y, p)) / W.sum(axis=1) if _is_binary(y) else None


def _w_rmse(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.sqrt(_w_mean(lambda a, b: (a.astype(float) - b) ** 2)(y, p, W))


def _w_r2(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    y = y.astype(float)
    total = W.sum(axis=1)
    residual = W @ (y - p) ** 2
    spread = W @ y ** 2 - (W @ y) ** 2 / total
    spread = np.where(spread > 1e-12 * np.maximum(W @ y ** 2, 1.0), spread, 0.0)  # rounding of a constant y
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1), (residual == 0) * 1.0)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", skm.accuracy_score, True, "classes", _w_accuracy),
    Metric("balanced_accuracy", skm.balanced_accuracy_score, True, "classes", _w_balanced),
    Metric("f1", _binary(skm.f1_score), True, "classes", _w_f1),
    Metric("precision", _binary(skm.precision_score), True, "classes", _w_precision),
    Metric("recall", _binary(skm.recall_score), True, "classes", _w_recall),
    Metric("roc_auc", skm.roc_auc_score, True, "scores", _w_roc_auc),
    Metric("log_loss", lambda y, p: skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]), False,
           "scores", _w_log_loss),
    Metric("rmse", lambda y, p: float(np.sqrt(np.mean((np.asarray(y, float) - p) ** 2))), False, "values",
           _w_rmse),
    Metric("mae", skm.mean_absolute_error, False, "values", _w_mean(lambda y, p: np.abs(y.astype(float) - p))),
    Metric("r2", skm.r2_score, True, "values", _w_r2),
)}


def metric_name(value: str) -> str:
    """A policy's metric name checked as a validator: a ValueError, so the error names its table
    (`slices[0].metric`)."""
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRICS)}")
    return value


def get_metric(name: object, *, field: str = "metric") -> Metric:
    if not isinstance(name, str) or name not in METRICS:
        raise InvalidInput(f"unknown metric {name!r}; one of {', '.join(METRICS)}", field=field)
    return METRICS[name]
