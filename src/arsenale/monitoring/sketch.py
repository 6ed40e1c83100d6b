"""Reading tables column by column, and the reference profile drift is measured against.

A `ReferenceProfile` lets monitoring compare live data with training data without
keeping (or reloading) the training data. It is computed once, is a few KB per column,
is deterministic (the same data gives the same JSON, whatever the row order), and two
profiles of disjoint parts merge into exactly the profile of the whole, so it can be
built in parallel or over a stream:

    reference_profile(a ∪ b) == reference_profile(a).merge(reference_profile(b))

Per numeric column it keeps:

- counts of finite values, nulls and infinities, the min and max;
- the exact sum and sum of squares (as exact binary fractions, so that merging never
  rounds), from which the mean and the population std are derived, correctly rounded;
- a histogram on a power-of-two grid: bin i holds the values in [i·2^k, (i+1)·2^k), with
  k the smallest exponent for which the column's range spans at most 1,024 bins.
  Two such grids always nest, which is what makes merging exact;
- the sorted values themselves while there are at most 1,000 of them (so drift against a
  small reference is as exact as against the data), and the distinct values with their
  counts while there are at most 20 (so a discrete column is recognised as one).

Per categorical column it keeps the count of every category, up to 10,000 categories;
beyond, the most frequent 10,000 and the rest summed as `__other__` (merging is then
exact only while the union has at most 10,000 categories).

Labels: categories are compared as text; integral numbers are written without a
fraction (`3`, whether stored as 3 or 3.0), other floats with `repr`.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from arsenale.errors import InvalidInput

__all__ = [
    "MAX_BINS",
    "OTHER",
    "CategoricalSketch",
    "Frame",
    "NumericSketch",
    "ReferenceProfile",
    "dyadic_exponent",
    "fine_histogram",
    "reference_profile",
]

Kind = Literal["numeric", "categorical"]
MAX_BINS = 1024
EXACT_VALUES = 1000
DISTINCT_VALUES = 20
MAX_CATEGORIES = 10_000
OTHER = "__other__"
_MIN_EXPONENT = -1074


# ---------------------------------------------------------------- reading tables

@dataclass
class NumericColumn:
    values: np.ndarray  # the finite values, float64, in table order (possibly a read-only view)
    nulls: int
    infinite: int


@dataclass
class CategoricalColumn:
    counts: dict[str, int]
    nulls: int


def label(value: Any) -> str:
    """One category's text; integral numbers lose their fraction so 3 and 3.0 are one category."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _module(name: str) -> Any:
    return sys.modules.get(name)


class Frame:
    """A pandas DataFrame, an Arrow table or a Parquet file, read one column at a time with as
    few copies as its layout allows (float64 columns without nulls are not copied at all; a
    Parquet file is never loaded whole, so a window larger than memory can be checked)."""

    def __init__(self, data: Any, *, field: str, categorical: Iterable[str] = ()) -> None:
        pd, pa = _module("pandas"), _module("pyarrow")
        self.field = field
        self._forced = set(categorical)
        self._path: str | None = None
        self._pandas: Any = None
        self._arrow: Any = None
        self.names: list[str] = []
        self.rows = 0
        if isinstance(data, (str, os.PathLike)):
            import pyarrow.parquet as pq

            self._path, self._pandas, self._arrow = os.fspath(data), None, None
            try:
                meta = pq.read_metadata(self._path)
            except (OSError, ValueError) as e:  # missing, unreadable or not Parquet
                raise InvalidInput(f"{field}: cannot read {self._path!r} as Parquet: {e}", field=field) from None
            self._schema = meta.schema.to_arrow_schema()
            self.names = list(self._schema.names)
            self.rows = meta.num_rows
            if len(set(self.names)) != len(self.names):
                raise InvalidInput(f"{field} has duplicate column names", field=field)
        elif pd is not None and isinstance(data, pd.DataFrame):
            if not all(isinstance(c, str) for c in data.columns):
                data = data.rename(columns=str)
            if data.columns.duplicated().any():
                dup = sorted(set(data.columns[data.columns.duplicated()]))
                raise InvalidInput(f"{field} has duplicate column names: {dup}", field=field)
            self._pandas, self._arrow = data, None
            self.names = list(data.columns)
            self.rows = len(data)
        elif pa is not None and isinstance(data, (pa.Table, pa.RecordBatch)):
            if isinstance(data, pa.RecordBatch):
                data = pa.Table.from_batches([data])
            if len(set(data.column_names)) != len(data.column_names):
                raise InvalidInput(f"{field} has duplicate column names", field=field)
            self._pandas, self._arrow = None, data
            self.names = list(data.column_names)
            self.rows = data.num_rows
        else:
            raise InvalidInput(f"{field} must be a pandas DataFrame, a pyarrow Table or the path of a Parquet "
                               f"file, got {type(data).__name__}", field=field)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def _column(self, name: str) -> Any:
        if self._path is None:
            return self._arrow[name]
        import pyarrow as pa
        import pyarrow.parquet as pq

        text = pa.types.is_string(self._schema.field(name).type) or pa.types.is_large_string(
            self._schema.field(name).type)
        return pq.read_table(self._path, columns=[name], read_dictionary=[name] if text else None,
                             use_threads=False).column(0)

    def kind(self, name: str) -> Kind:
        if name in self._forced:
            return "categorical"
        if self._path is not None:
            return _arrow_kind(self._schema.field(name))
        return _pandas_kind(self._pandas[name]) if self._pandas is not None else _arrow_kind(self._arrow[name])

    def non_null(self, name: str) -> int:
        if self._pandas is not None:
            return int(self._pandas[name].count())
        col = self._column(name)
        return len(col) - col.null_count

    def numeric(self, name: str) -> NumericColumn:
        raw = _pandas_numbers(self._pandas[name]) if self._pandas is not None else _arrow_numbers(self._column(name))
        finite = np.isfinite(raw)
        if finite.all():
            return NumericColumn(raw, 0, 0)
        nulls = int(np.count_nonzero(np.isnan(raw)))
        values = raw[finite]
        return NumericColumn(values, nulls, len(raw) - len(values) - nulls)

    def categorical(self, name: str) -> CategoricalColumn:
        if self._pandas is not None:
            return _pandas_counts(self._pandas[name])
        return _arrow_counts(self._column(name))


def _pandas_kind(s: Any) -> Kind:
    import pandas as pd

    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_complex_dtype(dt):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        return "numeric"
    if dt == object and pd.api.types.infer_dtype(s, skipna=True) in (
            "integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "categorical"


def _pandas_numbers(s: Any) -> np.ndarray:
    """float64 with NaN for nulls; datetimes in seconds since the epoch (UTC), durations in seconds."""
    import pandas as pd

    dt = s.dtype
    if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        if getattr(dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        unit = "datetime64[ns]" if pd.api.types.is_datetime64_any_dtype(dt) else "timedelta64[ns]"
        ns = s.to_numpy(dtype=unit)
        out = ns.astype("int64").astype("float64") / 1e9
        out[np.isnat(ns)] = np.nan
        return out
    if isinstance(dt, np.dtype) and dt == np.float64:
        return s.to_numpy()
    if isinstance(dt, np.dtype) and dt.kind in "iuf":
        return s.to_numpy(dtype="float64")
    if dt == object:
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _pandas_counts(s: Any) -> CategoricalColumn:
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        binned = np.bincount(codes.astype(np.int64) + 1, minlength=len(s.cat.categories) + 1)
        pairs: Iterable[tuple[Any, int]] = zip(s.cat.categories, binned[1:].tolist())
        nulls = int(binned[0])
    else:
        vc = s.value_counts(dropna=True, sort=False)
        pairs = zip(vc.index, vc.to_numpy().tolist())
        nulls = len(s) - int(vc.sum())
    return CategoricalColumn(_by_label(pairs), nulls)


def _by_label(pairs: Iterable[tuple[Any, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value, c in pairs:
        if c:
            key = label(value)
            counts[key] = counts.get(key, 0) + int(c)
    return counts


def _arrow_kind(col: Any) -> Kind:
    import pyarrow as pa

    t = col.type
    if pa.types.is_boolean(t) or pa.types.is_dictionary(t):
        return "categorical"
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)
            or pa.types.is_null(t)):
        return "numeric"
    return "categorical"


_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _arrow_numbers(col: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    scale = None
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        scale = _UNIT_SECONDS[t.unit]
        col = pc.cast(col, pa.int64())
    elif pa.types.is_date32(t):
        scale, col = 86400.0, pc.cast(col, pa.int32())
    elif pa.types.is_date64(t):
        scale, col = 1e-3, pc.cast(col, pa.int64())
    elif pa.types.is_decimal(t) or pa.types.is_null(t):
        col = pc.cast(col, pa.float64())
    if col.num_chunks == 0:
        return np.empty(0)
    out = col.to_numpy()
    if out.dtype != np.float64:
        out = out.astype(np.float64)  # integers with nulls arrive as float already; others need the copy
    if scale is not None:
        out = out * scale
    return out


def _arrow_counts(col: Any) -> CategoricalColumn:
    import pyarrow.compute as pc

    if len(col) == 0:
        return CategoricalColumn({}, 0)
    vc = pc.value_counts(col)
    values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
    return CategoricalColumn(_by_label((v, c) for v, c in zip(values, counts) if v is not None), col.null_count)


# ---------------------------------------------------------------- the power-of-two grid

def _fits(lo: float, hi: float, k: int) -> bool:
    """Does [lo, hi] span at most MAX_BINS bins of width 2^k, with bin numbers exact in a float?"""
    if math.ldexp(max(abs(lo), abs(hi)), -k) >= 2.0 ** 52:
        return False
    return math.floor(math.ldexp(hi, -k)) - math.floor(math.ldexp(lo, -k)) + 1 <= MAX_BINS


def dyadic_exponent(lo: float, hi: float) -> int:
    """The smallest k for which [lo, hi] fits the grid; a range that holds another never
    gets a smaller k, and coarsening a grid by one step merges bins pairwise, so grids of
    parts nest in the grid of the whole."""
    k = _MIN_EXPONENT
    half_span = hi / 2 - lo / 2
    if half_span > 0:
        k = max(k, math.frexp(half_span)[1] - 11)
    magnitude = max(abs(lo), abs(hi))
    if magnitude > 0:
        k = max(k, math.frexp(magnitude)[1] - 53)
    while not _fits(lo, hi, k):
        k += 1
    return k


def fine_histogram(values: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    """(number of the first bin, counts) of finite values on the grid of width 2^k."""
    idx = np.floor(np.ldexp(values, -k))
    first = int(idx.min())
    idx -= first
    return first, np.bincount(idx.astype(np.int64))


def _coarsen(first: int, counts: np.ndarray, steps: int) -> tuple[int, np.ndarray]:
    if steps <= 0:
        return first, counts
    idx = (np.arange(len(counts), dtype=np.int64) + first) >> steps
    new_first = int(idx[0])
    return new_first, np.bincount(idx - new_first, weights=counts).astype(np.int64)


# ---------------------------------------------------------------- exact sums

def _dyadic_sum(x: np.ndarray) -> Fraction:
    """Σx with no rounding: each float is an integer mantissa times a power of two; mantissas
    are summed per exponent in 18-bit slices, which float64 adds exactly."""
    x = x[x != 0]
    if not x.size:
        return Fraction(0)
    m, e = np.frexp(x)
    mant = np.ldexp(m, 53).astype(np.int64)
    exps = e.astype(np.int64) - 53
    e0 = int(exps.min())
    slot = exps - e0
    sign = np.sign(mant)
    mag = np.abs(mant)
    total = 0
    for shift in (36, 18, 0):
        part = ((mag >> shift) & 0x3FFFF) * sign
        sums = np.bincount(slot, weights=part.astype(np.float64))
        for s in np.flatnonzero(sums).tolist():
            total += int(sums[s]) << (s + shift)
    return Fraction(total) * Fraction(2) ** e0


def _dyadic_sum_squares(x: np.ndarray) -> Fraction:
    """Σx² with no rounding: x² = p + e exactly (Dekker's product); values are first scaled
    by a power of two so that neither p overflows nor e underflows."""
    total = Fraction(0)
    a = np.abs(x)
    for sel, scale in ((a < 2.0 ** -400, 600), ((a >= 2.0 ** -400) & (a < 2.0 ** 500), 0), (a >= 2.0 ** 500, -600)):
        y = np.ldexp(x[sel], scale)
        if not y.size:
            continue
        p = y * y
        c = 134217729.0 * y  # Veltkamp split into 26-bit halves
        hi = c - (c - y)
        lo = y - hi
        err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
        total += (_dyadic_sum(p) + _dyadic_sum(err)) * Fraction(2) ** (-2 * scale)
    return total


def _dyadic_text(f: Fraction) -> str:
    """An exact binary fraction as hex mantissa and binary exponent, like float.hex."""
    num, den = f.numerator, f.denominator
    exp = -(den.bit_length() - 1)
    if num:
        tz = (num & -num).bit_length() - 1
        num >>= tz
        exp += tz
    else:
        exp = 0
    return f"{'-' if num < 0 else ''}0x{abs(num):x}p{exp}"


def _dyadic_parse(text: str) -> Fraction:
    try:
        sign = -1 if text.startswith("-") else 1
        mant, exp = text.lstrip("-").removeprefix("0x").split("p")
        return sign * Fraction(int(mant, 16)) * Fraction(2) ** int(exp)
    except ValueError:
        raise InvalidInput(f"not an exact sum: {text!r}", field="profile") from None


# ---------------------------------------------------------------- profile models

class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")


class NumericSketch(_Model):
    kind: Literal["numeric"] = "numeric"
    count: int = Field(description="finite values")
    nulls: int = 0
    infinite: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = Field(default=None, description="population std (ddof=0)")
    sum: str = Field(default="0x0p0", description="exact sum of the finite values")
    sum_squares: str = Field(default="0x0p0", description="exact sum of their squares")
    bin_exponent: int | None = Field(default=None, description="bins are 2**bin_exponent wide")
    first_bin: int | None = Field(default=None, description="bin i covers [i·w, (i+1)·w)")
    counts: list[int] = Field(default_factory=list)
    values: list[float] | None = Field(default=None, description=f"sorted, while ≤ {EXACT_VALUES}")
    distinct: dict[str, int] | None = Field(default=None, description=f"while ≤ {DISTINCT_VALUES} values")

    @property
    def width(self) -> float | None:
        return None if self.bin_exponent is None else math.ldexp(1.0, self.bin_exponent)


class CategoricalSketch(_Model):
    kind: Literal["categorical"] = "categorical"
    count: int
    nulls: int = 0
    counts: dict[str, int] = Field(default_factory=dict)


Sketch = Annotated[NumericSketch | CategoricalSketch, Field(discriminator="kind")]


class ReferenceProfile(_Model):
    version: Literal[1] = 1
    rows: int
    columns: dict[str, Sketch]

    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """The profile of both parts' rows together (see the module docstring)."""
        if not isinstance(other, ReferenceProfile):
            raise InvalidInput("can only merge a ReferenceProfile", field="other")
        if list(self.columns) != list(other.columns):
            raise InvalidInput(f"profiles have different columns: {list(self.columns)} vs {list(other.columns)}",
                               field="other")
        merged: dict[str, NumericSketch | CategoricalSketch] = {}
        for name, a in self.columns.items():
            b = other.columns[name]
            if a.kind != b.kind:
                raise InvalidInput(f"column {name!r} is {a.kind} in one profile and {b.kind} in the other",
                                   field="other")
            if isinstance(a, NumericSketch) and isinstance(b, NumericSketch):
                merged[name] = _merge_numeric(a, b)
            elif isinstance(a, CategoricalSketch) and isinstance(b, CategoricalSketch):
                merged[name] = _merge_categorical(a, b)
        return ReferenceProfile(rows=self.rows + other.rows, columns=merged)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        return cls.model_validate_json(text)


# ---------------------------------------------------------------- building

def reference_profile(data: Any, *, columns: Sequence[str] | None = None,
                      categorical: Iterable[str] = ()) -> ReferenceProfile:
    """The compact, mergeable reference of a DataFrame or Arrow table (see the module docstring)."""
    frame = Frame(data, field="data", categorical=categorical)
    names = frame.names if columns is None else list(columns)
    missing = [n for n in names if n not in frame]
    if missing:
        raise InvalidInput(f"columns not in data: {missing}", field="columns")
    out: dict[str, NumericSketch | CategoricalSketch] = {}
    for name in names:
        if frame.kind(name) == "numeric":
            col = frame.numeric(name)
            out[name] = numeric_sketch(col.values, nulls=col.nulls, infinite=col.infinite)
        else:
            cat = frame.categorical(name)
            out[name] = _categorical_sketch(cat.counts, cat.nulls)
    return ReferenceProfile(rows=frame.rows, columns=out)


def numeric_sketch(values: np.ndarray, *, nulls: int = 0, infinite: int = 0) -> NumericSketch:
    """The sketch of finite float64 values."""
    n = int(values.size)
    if not n:
        return NumericSketch(count=0, nulls=nulls, infinite=infinite)
    lo, hi = float(values.min()), float(values.max())
    k = dyadic_exponent(lo, hi)
    first, counts = fine_histogram(values, k)
    s, q = _dyadic_sum(values), _dyadic_sum_squares(values)
    distinct = None
    if np.count_nonzero(counts) <= DISTINCT_VALUES:
        uniq, cnt = np.unique(values + 0.0, return_counts=True)  # + 0.0 folds -0.0 into 0.0
        if len(uniq) <= DISTINCT_VALUES:
            distinct = {repr(float(v)): int(c) for v, c in zip(uniq, cnt)}
    exact = (np.sort(values) + 0.0).tolist() if n <= EXACT_VALUES else None
    return _with_moments(NumericSketch(
        count=n, nulls=nulls, infinite=infinite, min=lo + 0.0, max=hi + 0.0, sum=_dyadic_text(s),
        sum_squares=_dyadic_text(q), bin_exponent=k, first_bin=first, counts=counts.tolist(), values=exact,
        distinct=distinct))


def _with_moments(sk: NumericSketch) -> NumericSketch:
    if sk.count:
        s, q = _dyadic_parse(sk.sum), _dyadic_parse(sk.sum_squares)
        mean = s / sk.count
        var = max(q / sk.count - mean * mean, Fraction(0))
        sk.mean, sk.std = float(mean), _sqrt(var)
    return sk


def _sqrt(f: Fraction) -> float:
    """√f for a fraction that may not fit a float (the variance of values near 1e300 does)."""
    if not f:
        return 0.0
    shift = (f.numerator.bit_length() - f.denominator.bit_length()) // 2 * 2
    return math.ldexp(math.sqrt(float(f / Fraction(2) ** shift)), shift // 2)


def _categorical_sketch(counts: dict[str, int], nulls: int) -> CategoricalSketch:
    return CategoricalSketch(count=sum(counts.values()), nulls=nulls, counts=_capped(counts))


def _capped(counts: dict[str, int]) -> dict[str, int]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) <= MAX_CATEGORIES:
        return dict(ordered)
    other = counts.get(OTHER, 0)
    kept = [(k, v) for k, v in ordered if k != OTHER][:MAX_CATEGORIES - 1]
    rest = sum(counts.values()) - sum(v for _, v in kept)
    return dict(sorted([*kept, (OTHER, rest if rest else other)], key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------- merging

def _merge_numeric(a: NumericSketch, b: NumericSketch) -> NumericSketch:
    if not a.count or not b.count:
        base = b if not a.count else a
        return base.model_copy(update={"nulls": a.nulls + b.nulls, "infinite": a.infinite + b.infinite})
    assert a.min is not None and a.max is not None and b.min is not None and b.max is not None
    lo, hi = min(a.min, b.min), max(a.max, b.max)
    k = max(a.bin_exponent or 0, b.bin_exponent or 0)
    while not _fits(lo, hi, k):
        k += 1
    fa, ca = _coarsen(a.first_bin or 0, np.asarray(a.counts, dtype=np.int64), k - (a.bin_exponent or 0))
    fb, cb = _coarsen(b.first_bin or 0, np.asarray(b.counts, dtype=np.int64), k - (b.bin_exponent or 0))
    first = min(fa, fb)
    counts = np.zeros(max(fa + len(ca), fb + len(cb)) - first, dtype=np.int64)
    counts[fa - first:fa - first + len(ca)] += ca
    counts[fb - first:fb - first + len(cb)] += cb
    n = a.count + b.count
    values = None
    if a.values is not None and b.values is not None and n <= EXACT_VALUES:
        values = sorted(a.values + b.values)
    distinct = None
    if a.distinct is not None and b.distinct is not None:
        both: dict[float, int] = {}
        for key, c in [*a.distinct.items(), *b.distinct.items()]:
            both[float(key)] = both.get(float(key), 0) + c
        if len(both) <= DISTINCT_VALUES:
            distinct = {repr(v): both[v] for v in sorted(both)}
    s = _dyadic_parse(a.sum) + _dyadic_parse(b.sum)
    q = _dyadic_parse(a.sum_squares) + _dyadic_parse(b.sum_squares)
    return _with_moments(NumericSketch(
        count=n, nulls=a.nulls + b.nulls, infinite=a.infinite + b.infinite, min=lo, max=hi,
        sum=_dyadic_text(s), sum_squares=_dyadic_text(q), bin_exponent=k, first_bin=first, counts=counts.tolist(),
        values=values, distinct=distinct))


def _merge_categorical(a: CategoricalSketch, b: CategoricalSketch) -> CategoricalSketch:
    counts = dict(a.counts)
    for key, c in b.counts.items():
        counts[key] = counts.get(key, 0) + c
    return CategoricalSketch(count=a.count + b.count, nulls=a.nulls + b.nulls, counts=_capped(counts))
