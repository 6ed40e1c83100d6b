"""Data quality of a live window against a model's contract: is serving sending what training saw?

    report = check_quality(contract, read_log(root, "fraud-api"))   # or contract.inputs, or their JSON dicts
    report.issues, report.summary, report.columns["amount"].null_share

Drift (`monitoring.drift`) asks whether the world has changed; these checks ask whether the
pipeline is broken, so every one of them is deterministic and needs no statistical test:

| kind | what | severity |
| --- | --- | --- |
| `missing_column`, `extra_column` | the window lacks a contract column / has one the contract does not know | error |
| `wrong_type` | values that are not of the contract's dtype (text in a numeric column, fractions in an int one) | error |
| `nulls` | nulls in a column that had none in training (error); a nullable column entirely null (warning) | |
| `out_of_range` | numbers or timestamps outside the training [min, max] (±inf included) | warning |
| `unseen_category` | values outside the contract's known categories | warning |
| `constant` | one value only, where training varied | warning |
| `skew` | summary statistics far from the training profile's (below) | warning |
| `empty_window` | no rows: nothing but the columns could be checked | warning |

Training/serving skew compares the window with the reference profile (the contract's, or `reference=`) and
flags a column when any of these tolerances is exceeded, so that a feature scaled or encoded differently
at serving time is caught while ordinary sampling noise is not:

- numeric: |mean difference| > 0.5 × reference std; std ratio outside [0.5, 2]; p25, p50 or p75 moved by
  more than 0.5 × reference std; null share moved by more than 10 points (nullable columns);
- categorical (string, category, bool): any known category's share (or `__other__`'s) moved by more than
  10 points; null share as above.

A difference also has to lie beyond 4 standard errors of the window's statistic, so that a window of a
few hundred rows does not raise skew on sampling noise alone: σ/√n for a mean; √(p(1−p)/n) for a share;
for the std, the log-ratio's √((κ−1)/4n) with κ the larger of the window's kurtosis and the reference's
(from its histogram), as heavy tails make a small sample's std noisy;
for a quartile, the rank it has in the reference (from the profile's histogram) must lie beyond p ±
4√(p(1−p)/n). For windows of thousands of rows the fixed tolerances above decide. Skew needs at least 100 non-null
values in the window and is not computed for datetimes, whose live values lie after training by nature. A constant column gets `constant`, not
also `skew`. Each column is read once into a numpy array (numbers) or factorized once (categories); every
check is then a vectorised pass over that array, so 1,000,000 rows × 30 columns take about a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arsenale.data.validation import _examples
from arsenale.errors import InvalidInput
from arsenale.registry.contract import (
    MAX_LABEL_CHARS,
    OTHER,
    ColumnSchema,
    Contract,
    FeatureProfile,
    Profile,
    Schema,
    _epoch_seconds,
    _frame,
    _logical,
    _numeric,
    profile,
)
from arsenale.registry.validation import _COMPATIBLE
from arsenale.serving.inference_log import META_COLUMNS

__all__ = ["ColumnQuality", "IssueKind", "QualityIssue", "QualityReport", "Severity", "check_quality"]

IssueKind = Literal["missing_column", "extra_column", "wrong_type", "nulls", "out_of_range",
                    "unseen_category", "constant", "skew", "empty_window"]
Severity = Literal["error", "warning"]
Example = float | int | bool | str | None

MEAN_TOLERANCE = 0.5  # × reference std
QUANTILE_TOLERANCE = 0.5  # × reference std
SKEW_QUANTILES = ("p25", "p50", "p75")
STD_RATIO = 2.0  # window std outside [ref / 2, ref × 2]
SHARE_TOLERANCE = 0.10  # category share or null share, absolute
MIN_SKEW_VALUES = 100
NOISE_SE = 4.0  # a difference within this many standard errors of the window's statistic is noise
DEFAULT_IGNORE = (*META_COLUMNS, "label")  # what `read_log` adds beside the inputs


# ---------------------------------------------------------------- the report

class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class QualityIssue(_Model):
    column: str | None = Field(description="None for an issue of the window as a whole")
    kind: IssueKind
    count: int = Field(description="window rows or values concerned")
    share: float = Field(description="count / rows of the window; 0 for an empty window")
    severity: Severity
    message: str
    examples: list[Example] = Field(default_factory=list)
    details: dict[str, float] = Field(default_factory=dict, description="skew: reference and window statistics")


class ColumnQuality(_Model):
    """Per contract column present in the window: the counts behind its issues (zero when clean)."""

    nulls: int = 0
    null_share: float = 0.0
    wrong_type: int = 0
    out_of_range: int = 0
    unseen: int = 0


class QualityReport(_Model):
    issues: list[QualityIssue]
    summary: dict[str, int | float]
    columns: dict[str, ColumnQuality]
    notes: list[str] = Field(default_factory=list)

    @property
    def errors(self) -> list[QualityIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def passed(self) -> bool:
        """No errors: the window honours the contract's schema (warnings may remain)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, NaN and ±inf as the strings "NaN", "Infinity", "-Infinity"."""
        return json.loads(self.model_dump_json())

    def to_json(self) -> str:
        return self.model_dump_json()


# ---------------------------------------------------------------- reading the arguments

def _contract(value: Any) -> tuple[Schema, Profile | None]:
    if isinstance(value, Mapping):
        try:
            value = Schema.model_validate(dict(value)) if "columns" in value else Contract.model_validate(dict(value))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "contract"
            raise InvalidInput(f"malformed contract at {where}: {err.get('msg')}", field="contract") from None
    if isinstance(value, Contract):
        if value.inputs is None:
            raise InvalidInput("the contract has no input schema (the model was registered without data)",
                               field="contract")
        schema, prof = value.inputs, value.profile
    elif isinstance(value, Schema):
        schema, prof = value, None
    else:
        raise InvalidInput(f"contract must be a Contract, a Schema or a dict of either, not {type(value).__name__}",
                           field="contract")
    if any(c.shape is not None for c in schema.columns):
        raise InvalidInput("a tensor input has no columns to check; quality checks need a table schema",
                           field="contract")
    return schema, prof


def _reference(value: Any, default: Profile | None) -> Profile | None:
    if value is None:
        return default
    if isinstance(value, Profile):
        return value
    if isinstance(value, pd.DataFrame):
        return profile(value)
    if isinstance(value, Mapping):
        try:
            return Profile.model_validate(dict(value))
        except ValidationError as exc:
            raise InvalidInput(f"malformed reference profile: {exc.errors()[0].get('msg')}",
                               field="reference") from None
    raise InvalidInput(f"reference must be a Profile, a dict of one or a DataFrame, not {type(value).__name__}",
                       field="reference")


# ---------------------------------------------------------------- one column

class _Column:
    """The checks of one contract column over one window column; appends to `issues`."""

    def __init__(self, col: ColumnSchema, s: pd.Series, ref: FeatureProfile | None) -> None:
        self.col, self.s, self.ref, self.rows = col, s, ref, len(s)
        self.issues: list[QualityIssue] = []
        self.stats = ColumnQuality()
        self.checked = 0  # non-null values compared with a range

    def add(self, kind: IssueKind, count: int, message: str, examples: list[Example] | None = None,
            severity: Severity = "warning", details: dict[str, float] | None = None) -> None:
        self.issues.append(QualityIssue(
            column=self.col.name, kind=kind, count=count, share=count / self.rows if self.rows else 0.0,
            severity=severity, message=f"column {self.col.name!r}: {message}", examples=examples or [],
            details=details or {}))

    def run(self) -> None:
        col, s = self.col, self.s
        null = s.isna().to_numpy(dtype=bool)
        nulls = int(null.sum())
        self.stats.nulls, self.stats.null_share = nulls, nulls / self.rows
        if nulls and not col.nullable:
            self.add("nulls", nulls, f"{nulls} null value(s) ({nulls / self.rows:.1%}), but it had none in "
                     "training", severity="error")
        elif nulls == self.rows:
            self.add("nulls", nulls, f"all {nulls} values are null")
        if nulls == self.rows:
            return  # nothing else to look at: no statistic of an all-null column is meaningful
        actual = _logical(s)
        compatible = actual in _COMPATIBLE[col.dtype]
        if col.dtype in ("float", "int", "datetime"):
            values = None
            if compatible or col.dtype != "datetime":
                values = _epoch_seconds(s) if col.dtype == "datetime" else _numeric(s)
            bad = ~null if values is None else ~null & np.isnan(values)
            if values is not None and not compatible and not bad.any():
                bad = ~null  # every value readable, yet not numbers: numbers sent as text, or booleans
            if col.dtype == "int" and values is not None and actual == "float":
                with np.errstate(invalid="ignore"):
                    bad |= np.isfinite(values) & (values != np.floor(values))
            self._wrong_type(bad, actual)
            if values is not None and not bad.all(where=~null):
                self._numeric(np.where(bad, np.nan, values) if bad.any() else values)
        else:
            self._wrong_type(np.zeros(self.rows, bool) if compatible else ~null, actual)
            self._categorical()

    def _wrong_type(self, bad: np.ndarray, actual: str) -> None:
        count = int(bad.sum())
        self.stats.wrong_type = count
        if count:
            self.add("wrong_type", count, f"{count} value(s) are not {self.col.dtype} (the column holds "
                     f"{actual} values, {self.s.dtype})", _examples(self.s, bad), severity="error")

    def _numeric(self, values: np.ndarray) -> None:
        col, ref = self.col, self.ref
        finite = np.isfinite(values)
        vals = values if finite.all() else values[finite]
        lo, hi = _bound(col, col.min, -math.inf), _bound(col, col.max, math.inf)
        with np.errstate(invalid="ignore"):
            outside = (values < lo) | (values > hi)
        self.checked = int((~np.isnan(values)).sum())
        count = self.stats.out_of_range = int(outside.sum())
        if count:
            self.add("out_of_range", count, f"{count} value(s) ({count / self.rows:.1%}) outside the training "
                     f"range [{col.min}, {col.max}]", _examples(self.s, outside))
        if not vals.size:
            return
        mn, mx = float(vals.min()), float(vals.max())
        varied = (ref is not None and (ref.std or 0.0) > 0) or (isinstance(col.min, (int, float, str))
                                                                 and col.min != col.max)
        if vals.size >= 2 and mn == mx and varied:
            example = _examples(self.s, finite)[0]
            self.add("constant", int(vals.size), f"every value is {example!r}, but it varied in training",
                     [example])
        elif ref is not None and ref.kind == "numeric" and col.dtype != "datetime" and vals.size >= MIN_SKEW_VALUES:
            self._numeric_skew(vals)

    def _numeric_skew(self, vals: np.ndarray) -> None:
        ref = self.ref
        assert ref is not None
        if ref.mean is None or ref.std is None or not ref.std > 0:
            return self._null_skew([], {})
        n = vals.size
        mean, std = float(vals.mean()), float(vals.std())
        tol = max(MEAN_TOLERANCE, NOISE_SE / math.sqrt(n)) * ref.std
        details = {"reference_mean": ref.mean, "mean": mean, "reference_std": ref.std, "std": std}
        found = []
        if abs(mean - ref.mean) > tol:
            found.append(f"mean {mean:.4g} vs {ref.mean:.4g} in training (tolerance ±{tol:.4g})")
        ratio = std / ref.std
        if not 1 / STD_RATIO <= ratio <= STD_RATIO:
            kurtosis = max(float(np.mean(((vals - mean) / std) ** 4)) if std > 0 else 1.0, self._reference_kurtosis())
            if ratio == 0 or abs(math.log(ratio)) > NOISE_SE * math.sqrt(max(kurtosis - 1, 0) / (4 * n)):
                found.append(f"std {std:.4g} vs {ref.std:.4g} (ratio {ratio:.3g}, outside "
                             f"[{1 / STD_RATIO:g}, {STD_RATIO:g}])")
        if ref.quantiles:
            keys = [k for k in SKEW_QUANTILES if k in ref.quantiles]
            qs = np.quantile(vals, [int(k[1:]) / 100 for k in keys])
            for key, q in zip(keys, qs.tolist()):
                details[f"reference_{key}"], details[key] = ref.quantiles[key], q
                p = int(key[1:]) / 100
                if abs(q - ref.quantiles[key]) > QUANTILE_TOLERANCE * ref.std and \
                        abs(self._reference_rank(q, p) - p) > NOISE_SE * math.sqrt(p * (1 - p) / n):
                    found.append(f"{key} {q:.4g} vs {ref.quantiles[key]:.4g}")
        self._null_skew(found, details)

    def _reference_rank(self, x: float, default: float) -> float:
        """The share of reference values below x, read off the profile's histogram (`default` without one)."""
        h = self.ref.histogram if self.ref is not None else None
        if h is None or not sum(h.counts):
            return default
        cumulative = np.concatenate([[0], np.cumsum(h.counts)]) / sum(h.counts)
        return float(np.interp(x, h.edges, cumulative))

    def _reference_kurtosis(self) -> float:
        """The reference's kurtosis from its histogram's bin midpoints: coarse, but it sees the tails."""
        ref = self.ref
        if ref is None or ref.histogram is None or not ref.std or not sum(ref.histogram.counts):
            return 1.0
        edges, counts = np.asarray(ref.histogram.edges), np.asarray(ref.histogram.counts)
        mids = (edges[:-1] + edges[1:]) / 2
        return float(np.sum(counts * ((mids - (ref.mean or 0.0)) / ref.std) ** 4) / counts.sum())

    def _categorical(self) -> None:
        col, ref = self.col, self.ref
        codes, uniques = pd.factorize(self.s, use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        labels = pd.Index(uniques).astype(str)
        if col.categories is not None:
            unseen = ~labels.isin(col.categories)
            count = self.stats.unseen = int(counts[unseen].sum())
            if count:
                examples: list[Example] = list(labels[unseen][:5])
                self.add("unseen_category", count, f"{count} value(s) ({count / self.rows:.1%}) in "
                         f"{int(unseen.sum())} categor{'y' if unseen.sum() == 1 else 'ies'} not seen in training",
                         examples)
        present = int(counts.sum())
        known = len(ref.frequencies) if ref is not None and ref.frequencies else len(col.categories or [])
        if len(uniques) == 1 and present >= 2 and known > 1:
            self.add("constant", present, f"every value is {labels[0]!r}, but it varied in training", [labels[0]])
        elif ref is not None and ref.frequencies and present >= MIN_SKEW_VALUES:
            self._category_skew(labels, counts, present)

    def _category_skew(self, labels: pd.Index, counts: np.ndarray, present: int) -> None:
        assert self.ref is not None and self.ref.frequencies is not None
        freq = self.ref.frequencies
        total = sum(freq.values()) or 1
        window = pd.Series(counts, index=labels.str.slice(0, MAX_LABEL_CHARS)).groupby(level=0).sum()
        shares = {k: float(window.get(k, 0)) / present for k in freq}
        if OTHER in freq:
            shares[OTHER] = float(window[~window.index.isin(list(freq))].sum()) / present
        moves = sorted(((shares[k] - freq[k] / total, k) for k in freq), key=lambda m: (-abs(m[0]), m[1]))
        found = [f"share of {k!r} {shares[k]:.1%} vs {freq[k] / total:.1%} in training"
                 for d, k in moves if abs(d) > _share_tolerance(freq[k] / total, present)]
        details = {f"share:{k}": shares[k] for _, k in moves[:5]}
        details.update({f"reference_share:{k}": freq[k] / total for _, k in moves[:5]})
        self._null_skew(found, details)

    def _null_skew(self, found: list[str], details: dict[str, float]) -> None:
        ref = self.ref
        assert ref is not None
        if self.col.nullable and ref.count + ref.nulls:
            was = ref.nulls / (ref.count + ref.nulls)
            details.update(reference_null_share=was, null_share=self.stats.null_share)
            if abs(self.stats.null_share - was) > _share_tolerance(was, self.rows):
                found.append(f"null share {self.stats.null_share:.1%} vs {was:.1%} in training")
        if found:
            self.add("skew", self.rows - self.stats.nulls, "training/serving skew: " + "; ".join(found),
                     details=details)


def _share_tolerance(p: float, n: int) -> float:
    return max(SHARE_TOLERANCE, NOISE_SE * math.sqrt(p * (1 - p) / n))


def _bound(col: ColumnSchema, value: float | str | None, default: float) -> float:
    if isinstance(value, str):  # a datetime bound, as ISO text
        seconds = float(_epoch_seconds(pd.Series([value], dtype=object))[0])
        return default if math.isnan(seconds) else seconds
    return default if value is None or math.isnan(value) else float(value)


# ---------------------------------------------------------------- the entry point

def check_quality(contract: Contract | Schema | Mapping[str, Any], current: pd.DataFrame, *,
                  reference: Profile | pd.DataFrame | Mapping[str, Any] | None = None,
                  ignore: Iterable[str] | None = None) -> QualityReport:
    """The data-quality issues of the window `current` against the contract (see the module docstring).

    `reference` is the training profile for skew (default: the contract's; a DataFrame is profiled).
    `ignore` names window columns that are not model inputs and so are not `extra_column`s (default:
    the metadata columns `read_log` adds). Bad arguments raise `InvalidInput` naming the argument;
    bad data never raises, it gives issues."""
    schema, default_profile = _contract(contract)
    prof = _reference(reference, default_profile)
    if not isinstance(current, pd.DataFrame):
        raise InvalidInput(f"current must be a pandas DataFrame, not {type(current).__name__}", field="current")
    frame = _frame(current, field="current")
    assert isinstance(frame, pd.DataFrame)
    skip = set(DEFAULT_IGNORE if ignore is None else ([ignore] if isinstance(ignore, str) else ignore))
    rows = len(frame)
    issues: list[QualityIssue] = []
    notes = [] if prof is not None else ["no reference profile: training/serving skew was not checked"]

    def table(kind: IssueKind, column: str | None, message: str, severity: Severity) -> None:
        count = rows if column is not None else 0
        issues.append(QualityIssue(column=column, kind=kind, count=count, share=1.0 if count else 0.0,
                                   severity=severity, message=message))

    if not rows:
        table("empty_window", None, "the window has no rows: only its columns could be checked", "warning")
    expected = {c.name for c in schema.columns}
    for c in schema.columns:
        if c.name not in frame.columns:
            table("missing_column", c.name, f"column {c.name!r} ({c.dtype}) is missing from the window", "error")
    for name in frame.columns:
        if name not in expected and name not in skip:
            table("extra_column", name, f"column {name!r} is not in the contract", "error")

    features = {f.name: f for f in prof.features} if prof is not None else {}
    columns: dict[str, ColumnQuality] = {}
    checked = out_of_range = nulls = 0
    for c in schema.columns:
        if c.name not in frame.columns:
            continue
        one = _Column(c, frame[c.name], features.get(c.name))
        if rows:
            one.run()
        issues += one.issues
        columns[c.name] = one.stats
        checked, out_of_range, nulls = (checked + one.checked, out_of_range + one.stats.out_of_range,
                                        nulls + one.stats.nulls)
    cells = rows * len(columns)
    errors = sum(i.severity == "error" for i in issues)
    summary: dict[str, int | float] = {
        "rows": rows, "columns": frame.shape[1], "issues": len(issues), "errors": errors,
        "warnings": len(issues) - errors, "missing_share": nulls / cells if cells else 0.0,
        "out_of_range_share": out_of_range / checked if checked else 0.0}
    return QualityReport(issues=issues, summary=summary, columns=columns, notes=notes)
