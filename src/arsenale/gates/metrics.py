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


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    reads: str  # "classes", "scores" (probability of the positive class) or "values"

    def __call__(self, y: np.ndarray, predicted: np.ndarray) -> float:
        return float(self.fn(y, predicted))

    def gain(self, candidate: float, champion: float) -> float:
        """How much better the candidate is, in the metric's units (positive is better either way)."""
        return candidate - champion if self.higher_is_better else champion - candidate


def _binary(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, p: fn(y, p, zero_division=0)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", skm.accuracy_score, True, "classes"),
    Metric("balanced_accuracy", skm.balanced_accuracy_score, True, "classes"),
    Metric("f1", _binary(skm.f1_score), True, "classes"),
    Metric("precision", _binary(skm.precision_score), True, "classes"),
    Metric("recall", _binary(skm.recall_score), True, "classes"),
    Metric("roc_auc", skm.roc_auc_score, True, "scores"),
    Metric("log_loss", lambda y, p: skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]), False,
           "scores"),
    Metric("rmse", lambda y, p: float(np.sqrt(np.mean((np.asarray(y, float) - p) ** 2))), False, "values"),
    Metric("mae", skm.mean_absolute_error, False, "values"),
    Metric("r2", skm.r2_score, True, "values"),
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
