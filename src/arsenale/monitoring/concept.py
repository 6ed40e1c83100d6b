"""Concept drift: is the model still right, and how right is it without the labels?

Data drift (see `drift`) says the inputs moved; it does not say whether the model got worse. This
module looks at the model's performance itself, in the three situations a deployment goes through:

- `detect_changes(errors)`: a stream of per-prediction errors (1 = wrong, 0 = right, or a loss)
  run through a sequential change detector, as the labels arrive. River supplies the detectors
  (ADWIN, Page-Hinkley, DDM) so that a detection means what the literature says it means; their
  state is deterministic, so the same stream always gives the same report.
- `performance_by_window(log)`: the inference log (`arsenale.serving.inference_log.read_log`)
  joined with its delayed labels, scored per time or row window, per version and per slice: the
  numbers a team compares when it asks "since when, for whom, which version".
- `estimate_performance(probabilities)`: before any label arrives, confidence-based performance
  estimation (CBPE): a calibrated probability p says the prediction is right with probability
  max(p, 1 − p), so the expected confusion matrix, and from it accuracy, precision, recall and F1,
  follow from the probabilities alone. `estimate_vs_reference` compares a window with the
  reference (validation) window: a drop in estimated accuracy is an early warning. The estimate
  holds only as far as the model is calibrated on the current data: it cannot see a change in
  P(label | input) that leaves the model equally confident (concept drift proper), which is what
  the labelled checks above are for.

Bad arguments raise `InvalidInput` naming the argument (or the missing column).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, TypedDict

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.units import parse_duration

__all__ = [
    "DETECTORS", "Change", "ChangeReport", "EstimateComparison", "PerformanceEstimate",
    "detect_changes", "estimate_performance", "estimate_vs_reference", "performance_by_window",
]

Detector = Literal["adwin", "page_hinkley", "ddm"]
DETECTORS: tuple[str, ...] = ("adwin", "page_hinkley", "ddm")
DEFAULT_WINDOW = "1h"
METRICS = ("accuracy", "precision", "recall", "f1")
Errors: TypeAlias = Sequence[float] | Sequence[bool] | np.ndarray | pd.Series
Probabilities: TypeAlias = Sequence[float] | Sequence[Sequence[float]] | np.ndarray | pd.Series


# ---------------------------------------------------------------- change detection

class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class Change(_Model):
    """One detection, with the error rate of the segments on either side of it.

    Segments run from one detection to the next: `before` ends with the row whose update
    triggered the detection (so it still holds the rows of the detection delay), `after`
    starts on the next row."""

    index: int = Field(description="0-based position in the stream of the row that triggered the detection")
    rows_before: int
    error_rate_before: float
    rows_after: int
    error_rate_after: float | None = Field(default=None, description="None when the detection is on the last row")


class ChangeReport(_Model):
    detector: str
    params: dict[str, Any] = Field(description="every parameter of the detector, defaults included")
    rows: int
    error_rate: float = Field(description="mean of the whole stream")
    changes: list[Change]

    @property
    def indices(self) -> list[int]:
        return [c.index for c in self.changes]

    @property
    def drifted(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())

    def to_json(self) -> str:
        return self.model_dump_json()


def _detector_class(name: str) -> type:
    # Imported here: river is only needed by the code that detects changes.
    from river import drift
    from river.drift import binary

    return {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley, "ddm": binary.DDM}[name]


def _check_params(name: str, cls: type, params: dict[str, Any]) -> None:
    """River's constructors accept anything; a negative threshold would silently never fire."""
    accepted = inspect.signature(cls).parameters
    for key, value in params.items():
        if key not in accepted:
            raise InvalidInput(f"detector {name!r} has no parameter {key!r}; it takes {', '.join(accepted)}",
                               field=key)
        default = accepted[key].default
        if key == "mode":
            if value not in ("up", "down", "both"):
                raise InvalidInput("mode must be 'up', 'down' or 'both'", field=key)
            continue
        integral = isinstance(default, int)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and value >= 0 and (not integral or float(value).is_integer()))
        if ok and key == "delta" and name == "adwin":
            ok = 0 < value < 1
        if ok and key == "alpha":
            ok = 0 < value <= 1
        if not ok:
            kind = "a non-negative integer" if integral else "a finite non-negative number"
            rule = " in (0, 1)" if (key == "delta" and name == "adwin") else " in (0, 1]" if key == "alpha" else ""
            raise InvalidInput(f"{key} must be {kind}{rule}, got {value!r}", field=key)


def _as_errors(errors: Errors, binary: bool) -> np.ndarray:
    try:
        x = np.asarray(errors, dtype="float64")
    except (TypeError, ValueError):
        raise InvalidInput("errors must be a sequence of numbers or booleans", field="errors") from None
    if x.ndim != 1:
        raise InvalidInput(f"errors must be one-dimensional, got shape {x.shape}", field="errors")
    if not x.size:
        raise InvalidInput("errors is empty: there is nothing to detect a change in", field="errors")
    if not np.isfinite(x).all():
        raise InvalidInput("errors holds NaN or infinite values", field="errors")
    if binary and not np.isin(x, (0.0, 1.0)).all():
        raise InvalidInput("the ddm detector needs errors of 0 or 1 (wrong or right)", field="errors")
    return x


def detect_changes(errors: Errors, *, detector: Detector = "adwin", **params: Any) -> ChangeReport:
    """Run a change detector over an error stream and say where the error rate changed.

    `errors` is one value per labelled prediction, oldest first: 1/True when the prediction was
    wrong, 0/False when right, or a per-row loss (ADWIN and Page-Hinkley; DDM models a rate of
    failures and takes 0/1 only). `params` are the detector's own (river's names and defaults:
    ADWIN `delta`, `clock`, `grace_period`, …; Page-Hinkley `threshold`, `delta`, `alpha`,
    `mode`, `min_instances`; DDM `warm_start`, `warning_threshold`, `drift_threshold`).

    A detection comes some rows after the change itself (the delay the detector needs to be sure);
    the detector then starts afresh, so a later change is reported again.
    """
    if detector not in DETECTORS:
        raise InvalidInput(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}", field="detector")
    cls = _detector_class(detector)
    _check_params(detector, cls, params)
    x = _as_errors(errors, binary=detector == "ddm")
    model = cls(**params)
    hits: list[int] = []
    values = x.astype(bool).tolist() if detector == "ddm" else x.tolist()
    for i, v in enumerate(values):
        model.update(v)
        if model.drift_detected:
            hits.append(i)
    cuts = np.concatenate([np.cumsum(x), [0.0]])  # cuts[i] = sum of x[0..i]; cuts[-1] = 0 for "before start"

    def mean(lo: int, hi: int) -> float:  # rows lo..hi inclusive, at least one
        return float((cuts[hi] - cuts[lo - 1]) / (hi - lo + 1))

    changes = []
    bounds = [-1, *hits, len(x) - 1]
    for k, i in enumerate(hits):
        prev, nxt = bounds[k], bounds[k + 2]
        changes.append(Change(index=i, rows_before=i - prev, error_rate_before=mean(prev + 1, i),
                              rows_after=nxt - i, error_rate_after=mean(i + 1, nxt) if nxt > i else None))
    return ChangeReport(detector=detector, params=model._get_params(), rows=len(x),
                        error_rate=float(x.mean()), changes=changes)


# ---------------------------------------------------------------- performance from the labelled log

def _window_ms(window: str) -> int:
    return max(1, round(parse_duration(window, field="window") * 1000))


def performance_by_window(log: pd.DataFrame, *, window: str | None = None, rows: int | None = None,
                          slices: Sequence[str] = (), by_version: bool = True, pos_label: Any = 1) -> pd.DataFrame:
    """Accuracy, precision, recall and F1 of logged predictions against their labels, per window.

    `log` is a frame like `read_log` returns: `prediction`, `label` (missing until feedback
    arrives), `timestamp_ms`, `model`/`version`, feature columns. Rows without a label (or
    without a prediction) are left out: a window's numbers are those of its labelled rows only,
    and a window with none does not appear.

    Windows are either of time (`window`, default "1h"; aligned on the Unix epoch, so hourly
    windows start on the hour UTC; `window_start`/`window_end` bound [start, end)) or of `rows`
    labelled rows in time order (the last one may be shorter; `window` numbers them,
    `window_start`/`window_end` are the first and last logged time in it). Row windows are cut
    over the whole log, so that one window is one period of time for every version and slice.

    Within a window, rows are grouped by `model` and `version` (when present and `by_version`)
    and by each column in `slices` (a missing slice value is a group of its own). Labels must be
    binary; `pos_label` is the positive class. The metrics are sklearn.metrics' definitions (with
    `zero_division=nan`: precision is NaN where nothing was predicted positive, recall where no
    label was positive), computed from per-group counts so that a million rows take no time.
    """
    if not isinstance(log, pd.DataFrame):
        raise InvalidInput(f"log must be a pandas DataFrame, got {type(log).__name__}", field="log")
    if window is not None and rows is not None:
        raise InvalidInput("give either window (a duration) or rows (a count), not both", field="rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1):
        raise InvalidInput(f"rows must be a positive integer, got {rows!r}", field="rows")
    width = _window_ms(window or DEFAULT_WINDOW) if rows is None else 0
    if isinstance(slices, str):
        slices = [slices]
    for column in ("prediction", "label", "timestamp_ms"):
        if column not in log.columns:
            raise InvalidInput(f"log has no column {column!r}", field=column)
    for column in slices:
        if column not in log.columns:
            raise InvalidInput(f"slice column {column!r} is not in the log", field="slices")
    versions = [c for c in ("model", "version") if by_version and c in log.columns and c not in slices]
    keys = [*versions, *slices]

    scored = log[log["label"].notna() & log["prediction"].notna()]
    if rows is not None:
        scored = scored.sort_values("timestamp_ms", kind="stable")
    label, prediction = scored["label"], scored["prediction"]
    classes = pd.unique(pd.concat([label, prediction], ignore_index=True))
    if len(classes) > 2:
        raise InvalidInput(f"labels must be binary; labels and predictions hold {len(classes)} classes",
                           field="label")
    if len(classes) and not (classes == pos_label).any():
        raise InvalidInput(f"pos_label {pos_label!r} is neither a label nor a prediction in the log",
                           field="pos_label")

    ts = scored["timestamp_ms"].to_numpy(dtype="int64")
    y, p = (label == pos_label).to_numpy(), (prediction == pos_label).to_numpy()
    frame = pd.DataFrame({k: scored[k].to_numpy() for k in keys})
    frame["_ts"] = ts
    frame["window"] = ts // width * width if rows is None else np.arange(len(scored)) // rows
    frame["labelled"] = 1
    frame["_correct"] = (label.to_numpy() == prediction.to_numpy()).astype("int64")
    frame["_tp"], frame["_fp"], frame["_fn"] = (y & p).astype("int64"), (~y & p).astype("int64"), (y & ~p).astype("int64")
    grouped = frame.groupby(["window", *keys], dropna=False, sort=True)
    out = grouped[["labelled", "_correct", "_tp", "_fp", "_fn"]].sum()
    if rows is None:
        out = out.reset_index()
        start = out["window"].to_numpy(dtype="int64")
        out.insert(0, "window_start", pd.to_datetime(start, unit="ms", utc=True))
        out.insert(1, "window_end", pd.to_datetime(start + width, unit="ms", utc=True))
        out = out.drop(columns="window")
    else:
        span = grouped["_ts"].agg(["min", "max"])
        out = out.join(span).reset_index()
        out.insert(1, "window_start", pd.to_datetime(out.pop("min"), unit="ms", utc=True))
        out.insert(2, "window_end", pd.to_datetime(out.pop("max"), unit="ms", utc=True))
    n, tp, fp, fn = (out[c].to_numpy(dtype="float64") for c in ("labelled", "_tp", "_fp", "_fn"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["accuracy"] = out["_correct"].to_numpy(dtype="float64") / n
        out["precision"] = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        out["recall"] = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        out["f1"] = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    out["labelled"] = out["labelled"].astype("int64")
    return out.drop(columns=["_correct", "_tp", "_fp", "_fn"]).reset_index(drop=True)


# ---------------------------------------------------------------- performance before the labels (CBPE)

class ConfusionMatrix(TypedDict):
    tp: float
    fp: float
    fn: float
    tn: float


class PerformanceEstimate(TypedDict):
    rows: int
    threshold: float
    accuracy: float
    accuracy_std: float  # of the realised accuracy around the estimate, if the model is calibrated
    precision: float | None  # None where the estimate is undefined (nothing predicted positive, …)
    recall: float | None
    f1: float | None
    predicted_positive_rate: float
    expected_positive_rate: float  # share of positive labels the probabilities expect
    confusion_matrix: ConfusionMatrix  # expected counts


class EstimateComparison(TypedDict):
    reference: PerformanceEstimate
    current: PerformanceEstimate
    drop: dict[str, float | None]  # reference − current per metric: positive means worse


def _as_probabilities(values: Probabilities, field: str) -> np.ndarray:
    try:
        p = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a sequence of numbers", field=field) from None
    if p.ndim == 2 and p.shape[1] == 2:  # predict_proba's (negative, positive) columns
        p = p[:, 1]
    if p.ndim != 1:
        raise InvalidInput(f"{field} must be one probability per row (or two columns), got shape {p.shape}",
                           field=field)
    if not p.size:
        raise InvalidInput(f"{field} is empty", field=field)
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise InvalidInput(f"{field} must be probabilities in [0, 1] (no NaN)", field=field)
    return p


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def estimate_performance(probabilities: Probabilities, *, threshold: float = 0.5) -> PerformanceEstimate:
    """Expected accuracy, precision, recall and F1 of a binary classifier from its probabilities alone.

    `probabilities` are P(label = positive) per row (or predict_proba's two columns); a row is
    predicted positive when p ≥ `threshold`. Assuming calibration (of all rows given p, a share p
    is positive), a predicted positive is a true positive with probability p and a false positive
    with 1 − p (a predicted negative: false negative p, true negative 1 − p). Summing gives the
    expected confusion matrix; accuracy is then mean(max(p, 1 − p)) at threshold 0.5, and
    precision, recall and F1 are those of the expected counts (as NannyML's CBPE does).

    The estimate is only as good as the calibration on the data it is given: calibrate on held-out
    data first (e.g. `sklearn.calibration.CalibratedClassifierCV`), and remember that a change in
    the relation between inputs and labels that leaves the model equally confident is invisible
    here; the labels, when they come, are the ground truth (`performance_by_window`).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidInput(f"threshold must be a number in [0, 1], got {threshold!r}", field="threshold")
    p = _as_probabilities(probabilities, "probabilities")
    positive = p >= threshold
    tp, fp = float(p[positive].sum()), float((1 - p[positive]).sum())
    fn, tn = float(p[~positive].sum()), float((1 - p[~positive]).sum())
    right = np.where(positive, p, 1 - p)  # probability that each prediction is correct
    n = len(p)
    return PerformanceEstimate(
        rows=n, threshold=float(threshold),
        accuracy=float(right.mean()),
        accuracy_std=float(math.sqrt((right * (1 - right)).sum()) / n),
        precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn), f1=_ratio(2 * tp, 2 * tp + fp + fn),
        predicted_positive_rate=float(positive.mean()), expected_positive_rate=float(p.mean()),
        confusion_matrix=ConfusionMatrix(tp=tp, fp=fp, fn=fn, tn=tn),
    )


def estimate_vs_reference(reference_probabilities: Probabilities, current_probabilities: Probabilities, *,
                          threshold: float = 0.5) -> EstimateComparison:
    """Estimated performance of a reference window (validation data, or the first days in
    production) and of a current one, and the drop from one to the other (positive = worse).

    The same calibration caveat applies as to `estimate_performance`, on both windows."""
    reference = estimate_performance(_as_probabilities(reference_probabilities, "reference_probabilities"),
                                     threshold=threshold)
    current = estimate_performance(_as_probabilities(current_probabilities, "current_probabilities"),
                                   threshold=threshold)
    drop: dict[str, float | None] = {}
    for metric in METRICS:
        ref, cur = reference[metric], current[metric]  # type: ignore[literal-required]
        drop[metric] = None if ref is None or cur is None else ref - cur
    return EstimateComparison(reference=reference, current=current, drop=drop)
