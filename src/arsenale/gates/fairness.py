"""Fairness across groups of a sensitive attribute: a model that is good on average can still select one
group far less often, miss its positives more often, or serve it far worse, and a gate should say so.

    [[fairness]]
    sensitive = "sex"                         # or ["sex", "age_band"]: intersectional groups
    metric = "accuracy"                       # reads classes or scores
    max_demographic_parity_difference = 0.1   # spread of the selection rate between groups
    max_equalized_odds_difference = 0.1       # the larger spread of the TPR and of the FPR
    max_metric_gap = 0.05                     # spread of the metric between groups
    max_regression = 0.01                     # worst group's metric vs the champion's worst group
    min_group_rows = 30                       # smaller groups are shown, not judged

Fairlearn computes the group metrics; this module only chooses which groups are large enough to judge,
names the groups behind each number and turns a limit into a verdict. Nulls form their own group,
`(missing)`, because a model that fails the rows with a missing attribute is a finding, not noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (  # type: ignore[import-untyped]
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from pydantic import Field, field_validator, model_validator

from arsenale.errors import InvalidInput
from arsenale.gates.metrics import METRICS, Metric, get_metric, metric_name
from arsenale.gates.results import CheckResult, Strict, toml_float

__all__ = ["MISSING", "FairnessCheck", "check_fairness"]

MISSING = "(missing)"
_LIMITS = ("max_demographic_parity_difference", "max_equalized_odds_difference", "max_metric_gap",
           "max_regression")


class FairnessCheck(Strict):
    sensitive: str | list[str] = Field(description="column(s) of the evaluation data; several make "
                                                   "intersectional groups")
    metric: str = "accuracy"
    max_demographic_parity_difference: float | None = Field(None, ge=0)
    max_equalized_odds_difference: float | None = Field(None, ge=0)
    max_metric_gap: float | None = Field(None, ge=0, description="largest spread of the metric between groups")
    max_regression: float | None = Field(None, ge=0, description="how much worse the worst group may be than "
                                                                 "the champion's worst group")
    min_group_rows: int = Field(30, ge=1)

    @field_validator("sensitive")
    @classmethod
    def _columns(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names or any(not n.strip() for n in names):
            raise ValueError("name at least one sensitive column, none of them empty")
        if len(set(names)) != len(names):
            raise ValueError("a sensitive column is named twice")
        return value

    @field_validator("metric")
    @classmethod
    def _classification(cls, value: str) -> str:
        if METRICS[metric_name(value)].reads == "values":
            raise ValueError(f"fairness compares classifiers; {value!r} is a regression metric")
        return value

    _number = field_validator(*_LIMITS, mode="before")(toml_float)

    @model_validator(mode="after")
    def _judges_something(self) -> FairnessCheck:
        if all(getattr(self, name) is None for name in _LIMITS):
            raise ValueError(f"a fairness check needs at least one limit: {', '.join(_LIMITS)}")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.sensitive] if isinstance(self.sensitive, str) else list(self.sensitive)


def check_fairness(check: FairnessCheck, y: Any, candidate: Any, champion: Any | None,
                   sensitive_frame: pd.DataFrame, *, candidate_scores: Any | None = None,
                   champion_scores: Any | None = None) -> list[CheckResult]:
    """One result per limit the check sets. `candidate` and `champion` are predicted classes (0/1 for
    parity and equalized odds); the scores are needed only for a metric that reads them (roc_auc, log_loss).
    Without a champion, the regression limit is reported as not judged."""
    metric = get_metric(check.metric)
    y = np.asarray(y)
    arrays = _predictions(metric, y, {"candidate": (candidate, candidate_scores),
                                      "champion": (champion, champion_scores)})
    if len(sensitive_frame) != len(y):
        raise InvalidInput(f"the sensitive data has {len(sensitive_frame)} rows, the labels {len(y)}",
                           field="data")
    groups = _group_labels(sensitive_frame, check.columns)
    binary = _is_binary(y)
    if check.max_demographic_parity_difference is not None or check.max_equalized_odds_difference is not None:
        if not binary:
            raise InvalidInput(f"demographic parity and equalized odds need binary 0/1 labels; got "
                               f"{_some(np.unique(y))}", field="y")
        for who, (classes, _) in arrays.items():
            if not _is_binary(classes):
                raise InvalidInput(f"the {who}'s predictions must be classes 0/1; got {_some(np.unique(classes))}",
                                   field=who)
    _computable(metric, y, arrays)
    rows = pd.Series(groups).value_counts(sort=False)
    order = sorted(rows.index, key=lambda g: (MISSING in g, g))
    judged = [g for g in order if rows[g] >= check.min_group_rows]
    small = [g for g in order if rows[g] < check.min_group_rows]
    name = "+".join(check.columns)
    if len(judged) < 2:
        sizes = ", ".join(f"{g!r} ({rows[g]} rows)" for g in order[:10])
        raise InvalidInput(f"fairness on {name} needs at least two groups of at least {check.min_group_rows} "
                           f"rows; got {sizes}", field="sensitive")
    tables = {who: _group_table(metric, y, classes, predicted, groups, binary)
              for who, (classes, predicted) in arrays.items()}
    details: dict[str, Any] = {
        "sensitive": check.columns, "metric": metric.name, "min_group_rows": check.min_group_rows,
        "groups": {g: {"rows": int(rows[g]), "judged": g in judged,
                       **{who: tables[who][g] for who in ("candidate", "champion") if who in tables}}
                   for g in order},
    }
    note = ("; " + f"{len(small)} group(s) below {check.min_group_rows} rows not judged: "
            + ", ".join(f"{g!r} ({rows[g]})" for g in small[:5]) + (" …" if len(small) > 5 else "")) if small else ""
    mask = np.isin(groups, judged)
    ctx = _Context(check, metric, y, arrays, groups, mask, judged, tables, details, note, f"fairness.{name}")
    results = []
    if check.max_demographic_parity_difference is not None:
        results.append(ctx.demographic_parity(check.max_demographic_parity_difference))
    if check.max_equalized_odds_difference is not None:
        results.append(ctx.equalized_odds(check.max_equalized_odds_difference))
    if check.max_metric_gap is not None:
        results.append(ctx.metric_gap(check.max_metric_gap))
    if check.max_regression is not None:
        results.append(ctx.regression(check.max_regression))
    return results


@dataclass(frozen=True)
class _Context:
    """What every judged quantity of one check reads: the arrays, the groups large enough to judge and the
    per-group tables, so each judgement is a short method."""

    check: FairnessCheck
    metric: Metric
    y: np.ndarray
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    groups: np.ndarray
    mask: np.ndarray  # rows of the judged groups
    judged: list[str]
    tables: dict[str, dict[str, dict[str, Any]]]
    details: dict[str, Any]
    note: str  # which groups were too small to judge
    prefix: str

    def _result(self, quantity: str, passed: bool, message: str, candidate: float | None,
                champion: float | None, **extra: Any) -> CheckResult:
        return CheckResult(f"{self.prefix}.{quantity}", passed, message + self.note, candidate, champion,
                           details={**self.details, "quantity": quantity, **extra})

    def _spread(self, column: str, among: Sequence[str]) -> tuple[str, str]:
        table = self.tables["candidate"]
        values = {g: table[g][column] for g in among if table[g][column] is not None}
        return min(values, key=values.__getitem__), max(values, key=values.__getitem__)

    def _fairlearn(self, fn: Callable[..., float], mask: np.ndarray) -> dict[str, float]:
        return {who: float(fn(self.y[mask], classes[mask], sensitive_features=self.groups[mask]))
                for who, (classes, _) in self.arrays.items()}

    def demographic_parity(self, limit: float) -> CheckResult:
        values = self._fairlearn(demographic_parity_difference, self.mask)
        low, high = self._spread("selection_rate", self.judged)
        rate = self.tables["candidate"]
        value = values["candidate"]
        message = (f"demographic parity difference {value:.4f} {'≤' if value <= limit else '>'} limit {limit:g}: "
                   f"selection rate lowest for {low!r} ({rate[low]['selection_rate']:.3f}), highest for "
                   f"{high!r} ({rate[high]['selection_rate']:.3f})")
        return self._result("demographic_parity_difference", value <= limit, message, value,
                            values.get("champion"), limit=limit, worst_group=low)

    def equalized_odds(self, limit: float) -> CheckResult:
        # A group without positives (or negatives) has no TPR (or FPR); Fairlearn would count it as 0.
        table = self.tables["candidate"]
        both = [g for g in self.judged if table[g]["tpr"] is not None and table[g]["fpr"] is not None]
        if len(both) < 2:
            raise InvalidInput(f"equalized odds on {'+'.join(self.check.columns)} needs at least two groups of "
                               f"{self.check.min_group_rows} rows holding both classes; got {len(both)}",
                               field="y")
        values = self._fairlearn(equalized_odds_difference, np.isin(self.groups, both))
        value = values["candidate"]
        spreads = {}
        for rate in ("tpr", "fpr"):
            low, high = self._spread(rate, both)
            spreads[rate] = (table[high][rate] - table[low][rate], low, high)
        rate = max(spreads, key=lambda r: spreads[r][0])
        _, low, high = spreads[rate]
        # the group the model serves worse: the lower TPR, or the higher FPR
        worst = low if rate == "tpr" else high
        skipped = [g for g in self.judged if g not in both]
        message = (f"equalized odds difference {value:.4f} {'≤' if value <= limit else '>'} limit {limit:g}: "
                   f"{rate.upper()} from {table[low][rate]:.3f} ({low!r}) to {table[high][rate]:.3f} ({high!r})"
                   + (f"; {len(skipped)} group(s) lacking one class left out: "
                      + ", ".join(map(repr, skipped[:5])) if skipped else ""))
        return self._result("equalized_odds_difference", value <= limit, message, value, values.get("champion"),
                            limit=limit, worst_group=worst)

    def _defined(self, among: Sequence[str], *who: str) -> list[str]:
        return [g for g in among if all(self.tables[w][g]["metric"] is not None for w in who)]

    def _worst(self, who: str, among: Sequence[str]) -> str:
        values = {g: self.tables[who][g]["metric"] for g in among}
        pick = min if self.metric.higher_is_better else max
        return pick(values, key=values.__getitem__)

    def _too_few(self, groups: Sequence[str]) -> None:
        if len(groups) < 2:
            raise InvalidInput(f"{self.metric.name} is defined on fewer than two groups of "
                               f"{'+'.join(self.check.columns)} large enough to judge (one class only?)",
                               field="metric")

    def metric_gap(self, limit: float) -> CheckResult:
        name = self.metric.name
        among = self._defined(self.judged, "candidate")
        self._too_few(among)
        gaps = {}
        for who in self.tables:
            defined = self._defined(among, who)
            values = [self.tables[who][g]["metric"] for g in defined]
            gaps[who] = max(values) - min(values) if len(values) >= 2 else None
        gap = gaps["candidate"]
        assert gap is not None
        table = self.tables["candidate"]
        worst = self._worst("candidate", among)
        best = (max if self.metric.higher_is_better else min)(among, key=lambda g: table[g]["metric"])
        undefined = [g for g in self.judged if g not in among]
        message = (f"{name} gap between groups {gap:.4f} {'≤' if gap <= limit else '>'} limit {limit:g}: worst "
                   f"{worst!r} ({table[worst]['metric']:.4f}), best {best!r} ({table[best]['metric']:.4f})"
                   + (f"; {name} undefined on " + ", ".join(map(repr, undefined[:5])) if undefined else ""))
        return self._result(f"{name}_gap", gap <= limit, message, gap, gaps.get("champion"), limit=limit,
                            worst_group=worst)

    def regression(self, limit: float) -> CheckResult:
        name = self.metric.name
        if "champion" not in self.tables:
            among = self._defined(self.judged, "candidate")
            self._too_few(among)
            worst = self._worst("candidate", among)
            value = self.tables["candidate"][worst]["metric"]
            return self._result(f"{name}_worst_group", True, f"worst group {worst!r}: {name} {value:.4f} (no "
                                "champion yet: the regression is not judged)", value, None, limit=limit,
                                worst_group=worst)
        among = self._defined(self.judged, "candidate", "champion")
        self._too_few(among)
        worst, base = self._worst("candidate", among), self._worst("champion", among)
        value, reference = self.tables["candidate"][worst]["metric"], self.tables["champion"][base]["metric"]
        gain = self.metric.gain(value, reference)
        passed = gain >= -limit
        message = (f"worst group {worst!r}: {name} {value:.4f} vs the champion's worst group {base!r} "
                   f"{reference:.4f}: gain {gain:+.4f}"
                   + ("" if passed else f", worse by more than the allowed {limit:g}"))
        return self._result(f"{name}_worst_group", passed, message, value, reference, limit=limit,
                            worst_group=worst, champion_worst_group=base, gain=gain)


def _predictions(metric: Metric, y: np.ndarray, models: dict[str, tuple[Any, Any]]
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each model's classes and what the metric reads (its scores, or the classes again), of matching lengths."""
    arrays = {}
    for who, (classes, scores) in models.items():
        if classes is None:
            continue
        if metric.reads == "scores" and scores is None:
            raise InvalidInput(f"{metric.name} reads scores: pass {who}_scores", field=f"{who}_scores")
        classes = np.asarray(classes)
        scored = np.asarray(scores) if metric.reads == "scores" else classes
        if len(y) == 0 or len(classes) != len(y) or len(scored) != len(y):
            raise InvalidInput(f"labels, {who} predictions and scores must have the same, non-zero length; "
                               f"got {len(y)}, {len(classes)}, {len(scored)}", field="data")
        arrays[who] = (classes, scored)
    return arrays


def _computable(metric: Metric, y: np.ndarray, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """A metric wrong for the whole data (f1 of three classes) is one clear error, not a NaN per group."""
    for who, (_, predicted) in arrays.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metric(y, predicted)
        except ValueError as exc:
            raise InvalidInput(f"{metric.name} cannot be computed on the {who}'s predictions: {exc}",
                               field="metric") from None


def _group_labels(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One string label per row; with several columns, `sex=F, age=old` (intersectional)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"the evaluation data has no sensitive column {', '.join(map(repr, missing))}; "
                           f"it has {', '.join(map(str, list(frame.columns)[:20]))}", field="sensitive")
    parts = [[MISSING if _is_null(v) else _text(v) for v in frame[c].tolist()] for c in columns]
    if len(columns) == 1:
        return np.array(parts[0], dtype=object)
    return np.array([", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True)) for row in zip(*parts)],
                    dtype=object)


def _group_table(metric: Metric, y: np.ndarray, classes: np.ndarray, predicted: np.ndarray,
                 groups: np.ndarray, binary: bool) -> dict[str, dict[str, Any]]:
    """Per group: the selection rate, TPR and FPR (binary labels only; None where a group lacks the class
    that defines them) and the metric (None where undefined)."""
    table: dict[str, dict[str, Any]] = {}
    frame = MetricFrame(metrics={"metric": _defined_or_nan(metric)}, y_true=y, y_pred=predicted,
                        sensitive_features=pd.Series(groups, name="group"))
    for g, value in frame.by_group["metric"].items():
        table[str(g)] = {"metric": _float(value), "selection_rate": None, "tpr": None, "fpr": None}
    if binary and _is_binary(classes):
        rates = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                     "fpr": false_positive_rate},
                            y_true=y.astype(int), y_pred=classes.astype(int),
                            sensitive_features=pd.Series(groups, name="group")).by_group
        for g, row in rates.iterrows():
            labels = y[groups == g]
            table[str(g)].update(selection_rate=_float(row["selection_rate"]),
                                 tpr=_float(row["tpr"]) if labels.any() else None,
                                 fpr=_float(row["fpr"]) if not labels.all() else None)
    return table


def _defined_or_nan(metric: Metric) -> Callable[[np.ndarray, np.ndarray], float]:
    def fn(y: np.ndarray, predicted: np.ndarray) -> float:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return metric(y, predicted)
        except ValueError:  # e.g. ROC AUC of a group holding one class
            return math.nan
    return fn


def _is_binary(values: np.ndarray) -> bool:
    try:
        return bool(np.isin(np.unique(values), [0, 1]).all()) and values.dtype.kind in "biuf"
    except TypeError:
        return False


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT or (
        value is pd.NA)


def _text(value: Any) -> str:
    """A group's name: codes held in a float column (because of a null) read `3`, not `3.0`."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _float(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _some(values: np.ndarray) -> str:
    shown = ", ".join(map(repr, values[:5].tolist()))
    return f"{len(values)} distinct values: {shown}" + (" …" if len(values) > 5 else "")
