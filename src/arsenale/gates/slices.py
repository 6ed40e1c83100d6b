"""Performance on slices of the evaluation data: a candidate that wins on average can still lose a region,
a product line or the oldest customers, and the overall metric hides it.

    [[slices]]
    by = "region"              # a column; numeric columns are cut into quantile bins labelled with their range
    metric = "accuracy"
    min = 0.8                  # floor on every slice (a ceiling for loss-like metrics)
    max_regression = 0.02      # no slice may be worse than the champion's by more than this, in metric units
    min_rows = 30              # smaller slices are shown, not judged
    bins = 4                   # numeric columns only
    values = ["north", "east"] # optional: judge only these slices

One result per slice column, failing if any judged slice fails; the per-slice table goes in its details.
A slice where the metric is undefined (ROC AUC of one class) is shown as not judged with the reason,
never compared as NaN. Nulls form their own slice, `(missing)`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import Metric, get_metric, metric_name
from arsenale.gates.results import CheckResult, Strict, toml_float

__all__ = ["MISSING", "SliceCheck", "check_slices", "slice_labels"]

MISSING = "(missing)"
SHOWN_FAILURES = 5  # a message names this many failing slices; the details hold all of them


class SliceCheck(Strict):
    by: str = Field(min_length=1, description="the column whose values (or quantile bins) are the slices")
    metric: str
    min: float | None = Field(None, description="floor on every slice (its ceiling for loss-like metrics)")
    max_regression: float | None = Field(None, ge=0, description="how much worse than the champion a slice may "
                                                                 "be, in the metric's units")
    min_rows: int = Field(30, ge=1)
    bins: int = Field(4, ge=2, le=100)
    values: list[str] | None = Field(None, min_length=1, description="judge only these slices")

    _known = field_validator("metric")(metric_name)
    _number = field_validator("min", "max_regression", mode="before")(toml_float)

    @model_validator(mode="after")
    def _judges_something(self) -> SliceCheck:
        if self.min is None and self.max_regression is None:
            raise ValueError("a slice check needs min, max_regression or both")
        return self


def check_slices(check: SliceCheck, y: Any, candidate: Any, champion: Any | None,
                 frame: pd.DataFrame) -> list[CheckResult]:
    """Judge every slice of `frame[check.by]` large enough to judge. `candidate` and `champion` are what the
    metric reads (classes, positive-class scores or values), row-aligned with `frame`. Without a champion
    only the floor applies."""
    metric = get_metric(check.metric)
    y = np.asarray(y)
    predictions = {"candidate": np.asarray(candidate)}
    if champion is not None:
        predictions["champion"] = np.asarray(champion)
    n = len(y)
    if n == 0 or any(len(p) != n for p in predictions.values()) or len(frame) != n:
        raise InvalidInput(f"labels, predictions and the evaluation data must have the same, non-zero length; "
                           f"got {n}, {', '.join(str(len(p)) for p in predictions.values())} and {len(frame)}",
                           field="data")
    for who, predicted in predictions.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metric(y, predicted)
        except ValueError as exc:  # wrong for the whole data, not for one slice: say so once
            raise InvalidInput(f"{metric.name} cannot be computed on the {who}'s predictions: {exc}",
                               field="metric") from None
    if check.by not in frame.columns:
        raise InvalidInput(f"the evaluation data has no column {check.by!r}; it has "
                           f"{', '.join(map(str, list(frame.columns)[:20]))}", field="by")
    labels, order = slice_labels(frame[check.by], check.bins)
    if check.values is not None:
        unknown = [v for v in check.values if v not in order]
        if unknown:
            raise InvalidInput(f"no slice {', '.join(map(repr, unknown))} in {check.by!r}; its slices are "
                               f"{', '.join(map(repr, order[:20]))}", field="values")
        order = [s for s in order if s in check.values]

    regression = check.max_regression is not None and champion is not None
    table = [_judge(check, metric, s, y[labels == s], {k: p[labels == s] for k, p in predictions.items()},
                    regression) for s in order]
    judged = [row for row in table if row["judged"]]
    name = f"slices.{check.by}.{metric.name}"
    if not judged:
        raise InvalidInput(f"no slice of {check.by!r} can be judged: each has fewer than {check.min_rows} rows "
                           f"or an undefined {metric.name}", field="by")
    pick = min if metric.higher_is_better else max
    worst = pick(judged, key=lambda row: row["candidate"])
    failed = [row for row in table if row["passed"] is False]
    summary = (f"{len(judged)} of {len(table)} slices of {check.by!r} judged; worst {worst['slice']!r} "
               f"({worst['rows']} rows): {metric.name} {worst['candidate']:.4f}"
               + ("" if worst["champion"] is None else f" vs champion {worst['champion']:.4f}"))
    notes = [f"{row['slice']!r}: {row['reason']}" for row in failed[:SHOWN_FAILURES]]
    if len(failed) > SHOWN_FAILURES:
        notes.append(f"and {len(failed) - SHOWN_FAILURES} more failing slices")
    if check.max_regression is not None and champion is None:
        notes.append("no champion yet: the regression is not judged")
    skipped = len(table) - len(judged)
    if skipped:
        notes.append(f"{skipped} slice(s) not judged (see details)")
    details = {"by": check.by, "metric": metric.name, "min": check.min, "max_regression": check.max_regression,
               "min_rows": check.min_rows, "worst_slice": worst["slice"], "slices": table}
    return [CheckResult(name, not failed, "; ".join([summary, *notes]), worst["candidate"], worst["champion"],
                        details=details)]


def _judge(check: SliceCheck, metric: Metric, label: str, y: np.ndarray, predictions: dict[str, np.ndarray],
           regression: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"slice": label, "rows": len(y), "candidate": None, "champion": None, "gain": None,
                           "judged": False, "passed": None, "reason": None}
    if len(y) < check.min_rows:
        row["reason"] = f"fewer than {check.min_rows} rows"
        return row
    for who, predicted in predictions.items():
        row[who] = _value(metric, y, predicted)
    if row["candidate"] is None or (regression and row["champion"] is None):
        row["reason"] = f"{metric.name} is undefined on this slice (one class only?)"
        return row
    failures = []
    if check.min is not None:
        ok = row["candidate"] >= check.min if metric.higher_is_better else row["candidate"] <= check.min
        if not ok:
            bound = "at least" if metric.higher_is_better else "at most"
            failures.append(f"{metric.name} {row['candidate']:.4f} is not {bound} {check.min:g}")
    if row["champion"] is not None:
        row["gain"] = metric.gain(row["candidate"], row["champion"])
        if regression and check.max_regression is not None and row["gain"] < -check.max_regression:
            failures.append(f"{metric.name} {row['candidate']:.4f} vs champion {row['champion']:.4f}: "
                            f"worse by {-row['gain']:.4f}, more than the allowed {check.max_regression:g}")
    row.update(judged=True, passed=not failures, reason=" and ".join(failures) or None)
    return row


def _value(metric: Metric, y: np.ndarray, predicted: np.ndarray) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns where it then returns NaN
            value = metric(y, predicted)
    except ValueError:  # e.g. ROC AUC of a slice holding one class
        return None
    return None if math.isnan(value) else value


def slice_labels(column: pd.Series, bins: int = 4) -> tuple[np.ndarray, list[str]]:
    """One slice label per row, and the slices in their natural order. A numeric column with more distinct
    values than `bins` is cut at its quantiles into right-closed ranges such as `(0.25, 3.5]`; anything else
    (categories, booleans, strings, a few codes) is sliced by value."""
    missing = column.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
        present = numbers[~missing]
        if len(np.unique(present)) > bins:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
            names = _ranges(edges)
            index = np.searchsorted(edges[1:-1], numbers, side="left")
            labels = np.array([MISSING if m else names[i] for i, m in zip(index, missing, strict=True)],
                              dtype=object)
            order = [names[i] for i in sorted(set(index[~missing].tolist()))]
            return labels, order + ([MISSING] if missing.any() else [])
    values = column.tolist()
    labels = np.array([MISSING if m else _text(v) for v, m in zip(values, missing, strict=True)], dtype=object)
    present_values = [v for v, m in zip(values, missing, strict=True) if not m]
    if isinstance(column.dtype, pd.CategoricalDtype):
        seen = {_text(v) for v in present_values}
        order = [_text(c) for c in column.cat.categories if _text(c) in seen]
    else:
        try:
            ordered = sorted(set(present_values))
        except TypeError:  # mixed types: order by text
            ordered = sorted(set(present_values), key=str)
        order = list(dict.fromkeys(_text(v) for v in ordered))
    return labels, order + ([MISSING] if missing.any() else [])


def _text(value: Any) -> str:
    """A slice's name: codes held in a float column (because of a null) read `3`, not `3.0`."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _ranges(edges: np.ndarray) -> list[str]:
    """Range labels with just enough digits to tell neighbouring edges apart."""
    for digits in range(4, 18):
        text = [f"{e:.{digits}g}" for e in edges]
        if len(set(text)) == len(text):
            break
    return [f"{'[' if i == 0 else '('}{text[i]}, {text[i + 1]}]" for i in range(len(edges) - 1)]
