"""Data drift: does the current data still look like the data the model learned from?

`drift(reference, current)` tests each column and the dataset as a whole. The reference is
training data, a `ReferenceProfile` (see `sketch`), or the `Profile` stored in a model's
contract; data is a pandas DataFrame, an Arrow table or the path of a Parquet file (read
one column at a time, never whole).

The method per column follows the practice of the field (and Evidently's defaults), by
type and by the number of reference values:

| column | ≤ 1,000 reference values | more |
| --- | --- | --- |
| numeric | Kolmogorov–Smirnov, drift when p < 0.05 | Wasserstein distance / reference std, drift when > 0.1 |
| categorical, or numeric with ≤ 5 distinct values | chi-squared (Z-test when two categories), p < 0.05 | Jensen–Shannon distance, > 0.1 |

PSI (≥ 0.1), Kullback–Leibler (≥ 0.1), Hellinger (≥ 0.1) and Anderson–Darling (p < 0.05)
are there by name, for every column (`method="psi"`: used where it applies, the default
elsewhere, with a note) or per column (`method={"age": "psi"}`: it must apply). Any
threshold can be set (`threshold=0.2` or per column). The dataset drifts when the share of drifted columns
reaches `drift_share` (0.5); a named `prediction` column is tested the same way and
reported on its own, outside that share.

Binning, for the methods that compare distributions over bins: categories as they are
(against a capped reference, unknown ones fall into its `__other__`); numeric columns
with ≤ 5 distinct values by value; other numeric columns at the reference deciles, cut on
the reference's power-of-two grid (so data and its profile bin identically), plus one
bin below the reference minimum and one above its maximum.

Values: nulls and ±inf are left out of every statistic and counted in the column's notes.
A Wasserstein distance is normed by max(std, 0.001), so a constant reference still gives a
finite score. A column that cannot be tested (missing, empty, all null, of another type in
the current data) gets `status="skipped"` and a `reason`, counts as not drifted and is left
out of the drift share; bad arguments raise `InvalidInput` naming the argument.

Against a profile without the values (over 1,000 rows), Kolmogorov–Smirnov and Wasserstein
are computed on bins and flagged `approximate`, with `error_bound`: Wasserstein is within
one bin width (÷ std) of the exact distance; the binned KS statistic is at most the exact
one and below it by at most the largest share of one bin. A `ReferenceProfile` keeps
≤ 1,024 bins across the reference range; a contract `Profile` only 20 (and its top 50
categories), so it gives a coarse answer.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput
from arsenale.monitoring import stattests
from arsenale.monitoring.sketch import (
    OTHER,
    CategoricalColumn,
    CategoricalSketch,
    Frame,
    Kind,
    NumericColumn,
    NumericSketch,
    ReferenceProfile,
    dyadic_exponent,
    fine_histogram,
)
from arsenale.monitoring.stattests import Method, Stat

__all__ = ["ColumnDrift", "DriftReport", "drift"]

SMALL_REFERENCE = 1000
DISCRETE_VALUES = 5
WASSERSTEIN_NORM_FLOOR = 0.001
MAX_COMPARE_BINS = 1 << 16
PARALLEL_CELLS = 200_000
_FAR = 2.0 ** 1000


# ---------------------------------------------------------------- the report

class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class ColumnDrift(_Model):
    name: str
    kind: Kind
    method: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    drifted: bool = False
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = Field(default=None, description="why the column was skipped")
    reference_count: int = Field(default=0, description="reference values the test used")
    current_count: int = Field(default=0, description="current values the test used")
    approximate: bool = False
    error_bound: float | None = Field(default=None, description="how far the statistic can be from the exact one")
    notes: list[str] = Field(default_factory=list)

    @property
    def score(self) -> float | None:
        """What the threshold is compared with: the p-value of a test, else the statistic."""
        m = stattests.method(self.method) if self.method else None
        return self.p_value if m is not None and m.kind == "p_value" else self.statistic


class DriftReport(_Model):
    columns: dict[str, ColumnDrift]
    prediction: ColumnDrift | None = None
    number_of_columns: int = Field(description="columns tested (skipped ones excluded)")
    number_of_drifted_columns: int
    number_of_skipped_columns: int
    drift_share: float = Field(description="drifted / tested columns; 0 when none could be tested")
    drift_share_threshold: float
    dataset_drift: bool
    reference: Literal["data", "profile", "contract"]
    reference_rows: int
    current_rows: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, NaN and ±inf as the strings "NaN", "Infinity", "-Infinity"."""
        return json.loads(self.model_dump_json())

    def to_json(self) -> str:
        return self.model_dump_json()


# ---------------------------------------------------------------- what drift compares against

@dataclass(frozen=True)
class _Grid:
    """Equal-width bins: bin i is [origin + i·width, origin + (i+1)·width). With `edges` (a
    contract histogram) values inside follow numpy.histogram's bins exactly, as when it was built."""

    origin: float
    width: float
    edges: np.ndarray | None = None

    def index(self, x: np.ndarray, steps: int = 0) -> np.ndarray:
        """Bin numbers (as floats) on this grid coarsened `steps` times (bins 2^steps wide)."""
        if self.edges is None:
            out = np.floor((x - self.origin) / math.ldexp(self.width, steps))
        else:
            out = np.floor((x - self.origin) / self.width)
            lo, hi, nb = self.edges[0], self.edges[-1], len(self.edges) - 1
            inside = (x >= lo) & (x <= hi)
            out[inside] = np.minimum(np.searchsorted(self.edges, x[inside], side="right") - 1, nb - 1)
            above = x > hi
            out[above] = nb + np.floor((x[above] - hi) / self.width)
            if steps:
                out = np.floor(np.ldexp(out, -steps))
        return np.clip(out, -_FAR, _FAR, out=out)  # absurd values stay finite, in the outermost bins


@dataclass
class _NumRef:
    count: int
    nulls: int = 0
    infinite: int = 0
    std: float = 0.0
    values: np.ndarray | None = None  # sorted, when the reference has them
    grid: _Grid | None = None
    first: int = 0
    counts: np.ndarray | None = None
    distinct: dict[float, int] | None = None
    note: str | None = None

    def binned(self) -> tuple[_Grid, int, np.ndarray]:
        if self.counts is None:
            assert self.values is not None
            k = dyadic_exponent(float(self.values[0]), float(self.values[-1]))
            self.first, self.counts = fine_histogram(self.values, k)
            self.grid = _Grid(0.0, math.ldexp(1.0, k))
        assert self.grid is not None
        return self.grid, self.first, self.counts


@dataclass
class _CatRef:
    counts: dict[str, int]
    nulls: int = 0
    capped: bool = False  # unknown categories belong to its __other__
    note: str | None = None

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def _few_distinct(sorted_values: np.ndarray, limit: int) -> dict[float, int] | None:
    """Value → count of sorted values, or None when there are more than `limit` distinct ones."""
    if not sorted_values.size:
        return {}
    starts = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    if len(starts) + 1 > limit:
        return None
    bounds = [0, *starts.tolist(), len(sorted_values)]
    return {float(sorted_values[a]) + 0.0: b - a for a, b in itertools.pairwise(bounds)}


class _DataReference:
    kind: Literal["data"] = "data"

    def __init__(self, frame: Frame) -> None:
        self.frame, self.rows, self.names = frame, frame.rows, frame.names

    def kind_of(self, name: str) -> Kind:
        return self.frame.kind(name)

    def numeric(self, name: str) -> _NumRef:
        col = self.frame.numeric(name)
        values = np.sort(col.values)
        std = float(np.std(values)) if values.size else 0.0  # of the sorted values, as from a profile
        return _NumRef(count=len(values), nulls=col.nulls, infinite=col.infinite, std=std, values=values,
                       distinct=_few_distinct(values, DISCRETE_VALUES))

    def categorical(self, name: str) -> _CatRef:
        col = self.frame.categorical(name)
        return _CatRef(col.counts, col.nulls)


class _SketchReference:
    kind: Literal["profile"] = "profile"

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile, self.rows, self.names = profile, profile.rows, list(profile.columns)

    def kind_of(self, name: str) -> Kind:
        return self.profile.columns[name].kind

    def numeric(self, name: str) -> _NumRef:
        sk = self.profile.columns[name]
        assert isinstance(sk, NumericSketch)
        ref = _NumRef(count=sk.count, nulls=sk.nulls, infinite=sk.infinite, std=sk.std or 0.0)
        if sk.count:
            ref.distinct = None if sk.distinct is None else {float(k): v for k, v in sk.distinct.items()}
            if sk.values is not None:
                ref.values = np.asarray(sk.values, dtype=np.float64)
            elif ref.distinct is not None:  # few distinct values: the sample itself, exactly
                keys = sorted(ref.distinct)
                ref.values = np.repeat(np.asarray(keys), [ref.distinct[k] for k in keys])
            if ref.values is not None:
                ref.std = float(np.std(ref.values))  # bit for bit what the data itself gives
            else:
                assert sk.width is not None
                ref.grid, ref.first = _Grid(0.0, sk.width), sk.first_bin or 0
                ref.counts = np.asarray(sk.counts, dtype=np.int64)
        return ref

    def categorical(self, name: str) -> _CatRef:
        sk = self.profile.columns[name]
        assert isinstance(sk, CategoricalSketch)
        return _CatRef(dict(sk.counts), sk.nulls, capped=OTHER in sk.counts)


class _ContractReference:
    """A model contract's Profile: 20-bin histograms and the top 50 categories."""

    kind: Literal["contract"] = "contract"

    def __init__(self, profile: Any) -> None:
        self.rows = profile.rows
        self.features = {f.name: f for f in profile.features}
        self.label = profile.label
        self.names = list(self.features)

    def feature(self, name: str) -> Any:
        return self.features.get(name, self.label)

    def kind_of(self, name: str) -> Kind:
        return self.feature(name).kind  # type: ignore[no-any-return]

    def numeric(self, name: str) -> _NumRef:
        fp = self.feature(name)
        hist = fp.histogram
        if hist is None or not sum(hist.counts):
            return _NumRef(count=0, nulls=fp.nulls, infinite=fp.infinite)
        edges = np.asarray(hist.edges, dtype=np.float64)
        counts = np.asarray(hist.counts, dtype=np.int64)
        width = float(edges[-1] - edges[0]) / len(counts)
        return _NumRef(count=int(counts.sum()), nulls=fp.nulls, infinite=fp.infinite, std=fp.std or 0.0,
                       grid=_Grid(float(edges[0]), width, edges), counts=counts,
                       note=f"reference is the contract's {len(counts)}-bin histogram")

    def categorical(self, name: str) -> _CatRef:
        fp = self.feature(name)
        counts = dict(fp.frequencies or {})
        return _CatRef(counts, fp.nulls, capped=OTHER in counts,
                       note="reference is the contract's top categories" if OTHER in counts else None)


_Reference = _DataReference | _SketchReference | _ContractReference


def _reference(data: Any, categorical: Sequence[str]) -> _Reference:
    if isinstance(data, ReferenceProfile):
        return _SketchReference(data)
    contract = sys.modules.get("arsenale.registry.contract")  # a contract Profile implies it is imported
    if contract is not None and isinstance(data, contract.Contract):
        if data.profile is None:
            raise InvalidInput("the contract has no reference profile (registered without data)",
                               field="reference")
        data = data.profile
    if contract is not None and isinstance(data, contract.Profile):
        return _ContractReference(data)
    return _DataReference(Frame(data, field="reference", categorical=categorical))


# ---------------------------------------------------------------- numeric columns

def _aligned_bins(grid: _Grid, first: int, counts: np.ndarray,
                  current: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Reference and current counts on one grid wide enough for both, and its bin width."""
    extremes = np.array([current.min(), current.max()])
    steps = 0
    while True:
        c_lo, c_hi = grid.index(extremes, steps).tolist()
        lo, hi = min(first >> steps, c_lo), max((first + len(counts) - 1) >> steps, c_hi)
        span = hi - lo + 1
        if span <= MAX_COMPARE_BINS and max(abs(lo), abs(hi)) < 2.0 ** 52:
            break
        steps += max(1, int(math.log2(span / MAX_COMPARE_BINS)))
    base = int(lo)
    ref_idx = ((np.arange(len(counts), dtype=np.int64) + first) >> steps) - base
    cur_idx = (grid.index(current, steps) - base).astype(np.int64)
    size = int(hi) - base + 1
    ref = np.bincount(ref_idx, weights=counts, minlength=size).astype(np.int64)
    cur = np.bincount(cur_idx, minlength=size)
    return ref, cur, math.ldexp(grid.width, steps)


def _decile_bins(ref: _NumRef, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid, first, counts = ref.binned()
    cum = np.cumsum(counts)
    pos = np.searchsorted(cum, cum[-1] * np.arange(1, 10) / 10.0, side="left")
    starts = first + pos + 1
    bounds = np.unique(np.concatenate([[first], starts[starts < first + len(counts)], [first + len(counts)]]))
    bounds = bounds.astype(np.float64)
    ref_groups = np.searchsorted(bounds, np.arange(first, first + len(counts), dtype=np.float64), side="right")
    r = np.bincount(ref_groups, weights=counts, minlength=len(bounds) + 1).astype(np.int64)
    c = np.bincount(np.searchsorted(bounds, grid.index(current), side="right"), minlength=len(bounds) + 1)
    return r, c


def _inapplicable(col: ColumnDrift, m: Method, why: str, strict: bool) -> None:
    """A method named for this column must fit it; one named for all columns falls back to the default."""
    if strict:
        raise InvalidInput(f"column {col.name!r}: {why}", field=f"method.{col.name}")
    col.notes.append(f"{m.name} does not apply ({why}): default method used")


def _numeric_drift(col: ColumnDrift, ref: _NumRef, cur: NumericColumn, requested: Method | None,
                   threshold: float | None, strict: bool) -> ColumnDrift:
    needs_sorted = ref.values is not None or (ref.distinct is not None and len(ref.distinct) <= DISCRETE_VALUES)
    cur_sorted = np.sort(cur.values) if needs_sorted else None
    discrete: dict[float, int] | None = None
    if ref.distinct is not None and len(ref.distinct) <= DISCRETE_VALUES and cur_sorted is not None:
        cur_distinct = _few_distinct(cur_sorted, DISCRETE_VALUES)
        if cur_distinct is not None and len(set(ref.distinct) | set(cur_distinct)) <= DISCRETE_VALUES:
            discrete = cur_distinct
    if requested is not None and requested.name == "anderson" and ref.values is None:
        _inapplicable(col, requested, "anderson needs the reference values, which a profile keeps only up to "
                                      "1,000 of", strict)
        requested = None
    elif requested is not None and requested.name == "z" and (discrete is None or len(
            set(ref.distinct or {}) | set(discrete)) > 2):
        _inapplicable(col, requested, "the Z-test needs a column with two values", strict)
        requested = None
    if requested is None:
        if discrete is not None:
            keys = len(set(ref.distinct or {}) | set(discrete))
            name = ("z" if keys <= 2 else "chisquare") if ref.count <= SMALL_REFERENCE else "jensenshannon"
        else:
            name = "ks" if ref.count <= SMALL_REFERENCE else "wasserstein"
        m = stattests.METHODS[name]
    else:
        m = requested

    if m.name in stattests.ON_COUNTS:
        if discrete is not None:
            assert ref.distinct is not None
            keys_sorted = sorted(set(ref.distinct) | set(discrete))
            r = np.array([ref.distinct.get(k, 0) for k in keys_sorted], dtype=np.int64)
            c = np.array([discrete.get(k, 0) for k in keys_sorted], dtype=np.int64)
        else:
            r, c = _decile_bins(ref, cur.values)
            col.notes.append("binned at the reference deciles")
        stat = stattests.ON_COUNTS[m.name](r, c)
    elif m.name == "wasserstein":
        norm = max(ref.std, WASSERSTEIN_NORM_FLOOR)
        if ref.std < WASSERSTEIN_NORM_FLOOR:
            col.notes.append(f"reference std {ref.std:.3g} < {WASSERSTEIN_NORM_FLOOR}: distance normed by "
                             f"{WASSERSTEIN_NORM_FLOOR}")
        if ref.values is not None:
            assert cur_sorted is not None
            raw = stattests.wasserstein(ref.values, cur_sorted)
        else:
            raw = stattests.wasserstein_binned(*_aligned_bins(*ref.binned(), cur.values))
        stat = Stat(raw.statistic / norm, None, None if raw.error_bound is None else raw.error_bound / norm)
    elif m.name == "ks":
        if ref.values is not None:
            stat = stattests.ks(ref.values, cur.values)
        else:
            r, c, _ = _aligned_bins(*ref.binned(), cur.values)
            stat = stattests.ks_binned(r, c)
    else:  # anderson
        assert ref.values is not None
        stat = stattests.anderson(ref.values, cur.values)
    return _decide(col, m, stat, threshold)


# ---------------------------------------------------------------- categorical columns

def _categorical_drift(col: ColumnDrift, ref: _CatRef, cur: CategoricalColumn, requested: Method | None,
                       threshold: float | None, strict: bool) -> ColumnDrift:
    counts = dict(cur.counts)
    unseen = sorted(k for k in counts if k not in ref.counts)
    if ref.capped and unseen:
        counts[OTHER] = counts.get(OTHER, 0) + sum(counts.pop(k) for k in unseen)
        col.notes.append(f"{len(unseen)} current categories outside the reference's list counted as {OTHER}")
    elif unseen:
        shown = ", ".join(repr(k) for k in unseen[:3]) + (", …" if len(unseen) > 3 else "")
        col.notes.append(f"{len(unseen)} categories never seen in the reference: {shown}")
    keys = sorted(set(ref.counts) | set(counts))
    r = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.int64)
    c = np.array([counts.get(k, 0) for k in keys], dtype=np.int64)
    if requested is not None and not requested.categorical:
        _inapplicable(col, requested, f"{requested.name} needs numbers", strict)
        requested = None
    elif requested is not None and requested.name == "z" and len(keys) > 2:
        _inapplicable(col, requested, f"the Z-test needs two categories, there are {len(keys)}", strict)
        requested = None
    if requested is None:
        name = ("z" if len(keys) <= 2 else "chisquare") if ref.count <= SMALL_REFERENCE else "jensenshannon"
        m = stattests.METHODS[name]
    else:
        m = requested
    return _decide(col, m, stattests.ON_COUNTS[m.name](r, c), threshold)


def _decide(col: ColumnDrift, m: Method, stat: Stat, threshold: float | None) -> ColumnDrift:
    col.method, col.statistic, col.p_value = m.name, stat.statistic, stat.p_value
    col.threshold = m.threshold if threshold is None else threshold
    col.approximate, col.error_bound = stat.error_bound is not None, stat.error_bound
    score = stat.p_value if m.kind == "p_value" else stat.statistic
    if score is None or math.isnan(score):
        return _skip(col, "the statistic is undefined for these values")
    col.drifted = m.drifted(score, col.threshold)
    return col


def _skip(col: ColumnDrift, reason: str) -> ColumnDrift:
    col.status, col.reason, col.drifted = "skipped", reason, False
    return col


# ---------------------------------------------------------------- one column

def _missing(what: str, nulls: int, infinite: int) -> str:
    parts = [f"{nulls:,} null"] + ([f"{infinite:,} infinite"] if infinite else [])
    return f"the {what} has no values ({', '.join(parts)})"


def _column(name: str, ref: _Reference, cur: Frame, requested: Method | None,
            threshold: float | None, strict: bool) -> ColumnDrift:
    kind = ref.kind_of(name)
    col = ColumnDrift(name=name, kind=kind)
    if name not in cur:
        return _skip(col, "missing from the current data")
    if cur.rows == 0:
        return _skip(col, "the current data has no rows")
    if kind == "numeric":
        if cur.kind(name) != "numeric" and cur.non_null(name):
            return _skip(col, "numeric in the reference but not in the current data")
        nref = ref.numeric(name)
        if nref.note:
            col.notes.append(nref.note)
        if not nref.count:
            return _skip(col, _missing("reference", nref.nulls, nref.infinite))
        ncur = cur.numeric(name)
        if not ncur.values.size:
            return _skip(col, _missing("current data", ncur.nulls, ncur.infinite))
        for side, n in (("reference", nref.infinite), ("current", ncur.infinite)):
            if n:
                col.notes.append(f"{n:,} infinite {side} values left out")
        col.reference_count, col.current_count = nref.count, int(ncur.values.size)
        return _numeric_drift(col, nref, ncur, requested, threshold, strict)
    cref = ref.categorical(name)
    if cref.note:
        col.notes.append(cref.note)
    if not cref.count:
        return _skip(col, _missing("reference", cref.nulls, 0))
    ccur = cur.categorical(name)
    if not ccur.counts:
        return _skip(col, _missing("current data", ccur.nulls, 0))
    col.reference_count, col.current_count = cref.count, sum(ccur.counts.values())
    return _categorical_drift(col, cref, ccur, requested, threshold, strict)


# ---------------------------------------------------------------- arguments

def _per_column(value: Any, names: list[str], field: str, parse: Callable[[Any, str], Any]) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise InvalidInput(f"{field} names columns that are not tested: {unknown}", field=field)
        return {k: parse(v, f"{field}.{k}") for k, v in value.items()}
    parsed = parse(value, field)
    return dict.fromkeys(names, parsed)


def _parse_method(value: Any, field: str) -> Method:
    m = stattests.method(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidInput(f"unknown drift method {value!r}; known: {sorted(stattests.METHODS)}", field=field)
    return m


def _parse_threshold(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{field} must be a finite number ≥ 0, got {value!r}", field=field)
    return float(value)


def _workers(ref: _Reference, cur: Frame, columns: int) -> int:
    cells = (ref.rows if isinstance(ref, _DataReference) else 0) * columns + cur.rows * columns
    if cells < PARALLEL_CELLS:
        return 1
    return max(1, min(os.cpu_count() or 1, 4, columns))


# ---------------------------------------------------------------- the entry point

def drift(reference: Any, current: Any, *, columns: Sequence[str] | None = None,
          categorical: Sequence[str] = (), prediction: str | None = None,
          method: str | Mapping[str, str] | None = None, threshold: float | Mapping[str, float] | None = None,
          drift_share: float = 0.5) -> DriftReport:
    """Per-column and dataset drift of `current` against `reference` (see the module docstring).

    `columns` limits the test to those reference columns; `categorical` names columns to
    treat as categories whatever their dtype (e.g. integer codes)."""
    if isinstance(drift_share, bool) or not isinstance(drift_share, (int, float)) \
            or not 0 <= drift_share <= 1:
        raise InvalidInput(f"drift_share must be between 0 and 1, got {drift_share!r}", field="drift_share")
    if isinstance(categorical, str):
        categorical = [categorical]
    ref = _reference(reference, categorical)
    if isinstance(current, ReferenceProfile):
        raise InvalidInput("current must be data (a DataFrame, an Arrow table or a Parquet file), not a profile",
                           field="current")
    cur = Frame(current, field="current", categorical=categorical)

    if prediction is not None:
        known = ref.names + ([ref.label.name] if isinstance(ref, _ContractReference) and ref.label else [])
        if prediction not in ref.names and not (isinstance(ref, _ContractReference) and ref.label is not None):
            raise InvalidInput(f"prediction column {prediction!r} is not in the reference ({known})",
                               field="prediction")
    if columns is None:
        names = [n for n in ref.names if n != prediction]
    else:
        names = list(columns)
        missing = [n for n in names if n not in ref.names]
        if missing:
            raise InvalidInput(f"columns not in the reference: {missing}", field="columns")
    tested = names + ([prediction] if prediction is not None else [])
    methods = _per_column(method, tested, "method", _parse_method)
    thresholds = _per_column(threshold, tested, "threshold", _parse_threshold)

    def one(name: str) -> ColumnDrift:
        result = _column(name, ref, cur, methods.get(name), thresholds.get(name), strict=isinstance(method, Mapping))
        if name == prediction and isinstance(ref, _ContractReference) and name not in ref.features:
            result.notes.append(f"compared with the training label {ref.label.name!r}")  # type: ignore[union-attr]
        return result

    workers = _workers(ref, cur, len(tested))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="arsenale-drift") as pool:
            results = list(pool.map(one, tested))
    else:
        results = [one(n) for n in tested]
    by_name = dict(zip(tested, results))
    pred = by_name.pop(prediction) if prediction is not None else None
    checked = [c for c in by_name.values() if c.status == "ok"]
    drifted = sum(c.drifted for c in checked)
    share = drifted / len(checked) if checked else 0.0
    return DriftReport(
        columns=by_name, prediction=pred, number_of_columns=len(checked), number_of_drifted_columns=drifted,
        number_of_skipped_columns=len(by_name) - len(checked), drift_share=share,
        drift_share_threshold=float(drift_share), dataset_drift=bool(checked) and share >= drift_share,
        reference=ref.kind, reference_rows=ref.rows, current_rows=cur.rows)
