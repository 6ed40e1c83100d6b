"""The model contract: what a model expects and what it was trained on, inferred from data.

A contract is stored as JSON with each model version and read later by serving
(`arsenale.registry.validation.validate_input` on every request), monitoring (the
`profile` is the drift reference) and CI gates (metrics, slices). It holds:

- `inputs` / `outputs`: a `Schema` — named columns with a logical dtype (float, int,
  bool, string, category, datetime), nullability, the training range and, for
  low-cardinality text, the known categories;
- `profile`: per-feature statistics of the reference data — numeric: count, nulls,
  mean, std (population, ddof=0), min/max, quantiles and a 20-bin histogram over the
  finite values; categorical (bool, string, category): the top 50 value counts and
  `__other__`. Datetimes are profiled as numbers, in seconds since the epoch (UTC);
- `metrics`, `slices` and a `data_fingerprint` (BLAKE3 of the data's canonical bytes).

NaN and ±inf survive the JSON trip as the strings "NaN", "Infinity", "-Infinity".
Sizes are capped (≤ 50 categories and 50 frequencies per column, long labels dropped or
truncated) so a 100-column contract stays far below 200 KB.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import blake3
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from arsenale.errors import InvalidInput

__all__ = [
    "ColumnSchema", "Contract", "FeatureProfile", "Histogram", "Profile", "Schema",
    "build_contract", "fingerprint", "infer_output_schema", "infer_schema", "profile",
]

Dtype = Literal["float", "int", "bool", "string", "category", "datetime"]

MAX_CATEGORIES = 50
MAX_CATEGORY_CHARS = 256
MAX_FREQUENCIES = 50
MAX_LABEL_CHARS = 200
HISTOGRAM_BINS = 20
OTHER = "__other__"
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
OUTPUT_SAMPLE_ROWS = 100
MAX_EXAMPLES = 3
TENSOR_COLUMN = "input"


class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", extra="ignore")

    def model_dump_json(self, **kwargs: Any) -> str:
        # Every field that can be None defaults to None: leaving them out keeps contracts small.
        kwargs.setdefault("exclude_none", True)
        return super().model_dump_json(**kwargs)


class ColumnSchema(_Model):
    name: str
    dtype: Dtype
    nullable: bool = False
    min: float | str | None = Field(default=None, description="training minimum; an ISO timestamp for datetimes")
    max: float | str | None = Field(default=None, description="training maximum; an ISO timestamp for datetimes")
    categories: list[str] | None = None
    shape: list[int | None] | None = Field(default=None, description="per-row shape of a tensor input")

    @model_validator(mode="after")
    def _numeric_bounds(self) -> ColumnSchema:
        # "NaN"/"Infinity" come back from JSON as strings; only datetimes keep string bounds.
        if self.dtype != "datetime":
            for attr in ("min", "max"):
                value = getattr(self, attr)
                if isinstance(value, str):
                    try:
                        setattr(self, attr, float(value))
                    except ValueError:
                        raise ValueError(f"{attr} of a {self.dtype} column must be a number") from None
        return self


class Schema(_Model):
    columns: list[ColumnSchema]
    kind: Literal["dataframe", "array"]
    shape: list[int | None]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class Histogram(_Model):
    edges: list[float]
    counts: list[int]


class FeatureProfile(_Model):
    name: str
    kind: Literal["numeric", "categorical"]
    count: int = Field(description="non-null values")
    nulls: int = 0
    infinite: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None
    frequencies: dict[str, int] | None = None


class Profile(_Model):
    rows: int
    features: list[FeatureProfile]
    label: FeatureProfile | None = None


class Contract(_Model):
    schema_version: int = 1
    inputs: Schema | None = Field(default=None, description="None when the model was registered without data")
    outputs: Schema | None = None
    profile: Profile | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    slices: list[str] = Field(default_factory=list)
    data_fingerprint: str | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Contract:
        return cls.model_validate_json(text)


# ---------------------------------------------------------------- reading data

def _frame(X: Any, *, field: str = "X") -> pd.DataFrame | np.ndarray:
    """A DataFrame (named columns) or an ndarray of 3+ dimensions (a tensor input)."""
    if isinstance(X, pd.DataFrame):
        if not all(isinstance(c, str) for c in X.columns):
            X = X.rename(columns=str)
        if X.columns.duplicated().any():
            dup = sorted(set(X.columns[X.columns.duplicated()]))
            raise InvalidInput(f"{field} has duplicate column names: {dup}", field=field)
        return X
    if isinstance(X, pd.Series):
        return X.to_frame(name=str(X.name) if X.name is not None else "f0")
    arr = _array(X, field)
    if arr.ndim == 0:
        raise InvalidInput(f"{field} must be a table or an array, not a scalar", field=field)
    if arr.ndim == 1:
        return pd.DataFrame({"f0": arr}, copy=False)
    if arr.ndim == 2:
        return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])], copy=False)
    return arr


def _array(X: Any, field: str) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, (str, bytes, Mapping)) or X is None:
        raise InvalidInput(f"{field} must be a DataFrame, an array or a list of rows, got {type(X).__name__}",
                           field=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(X)
    except ValueError as e:  # ragged lists
        raise InvalidInput(f"{field} is not rectangular: {e}", field=field) from None
    if arr.dtype == object and arr.ndim == 1 and len(arr) and isinstance(arr[0], (list, tuple, np.ndarray)):
        raise InvalidInput(f"{field} is not rectangular: rows have different lengths", field=field)
    return arr


def _logical(s: pd.Series) -> Dtype:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if pd.api.types.is_integer_dtype(dt):
        return "int"
    if pd.api.types.is_float_dtype(dt):
        return "float"
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    return {"boolean": "bool", "integer": "int", "floating": "float", "mixed-integer-float": "float",
            "decimal": "float", "datetime": "datetime", "datetime64": "datetime", "date": "datetime",
            }.get(inferred, "string")  # type: ignore[return-value]


def _numeric(s: pd.Series) -> np.ndarray:
    """float64 values with NaN for nulls; datetimes become seconds since the epoch (UTC)."""
    if _logical(s) == "datetime":
        return _epoch_seconds(s)
    try:
        return s.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _as_datetime(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s
    else:
        # Text and Python datetimes: naive values are taken as UTC, offsets are honoured.
        out = pd.to_datetime(s, errors="coerce", format="ISO8601", utc=True)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _epoch_seconds(s: pd.Series) -> np.ndarray:
    arr = _as_datetime(s).to_numpy(dtype="datetime64[us]")
    nat = np.isnat(arr)
    out = arr.astype("int64").astype("float64") / 1e6
    out[nat] = np.nan
    return out


def _iso(seconds: float, tz: Any) -> str:
    ts = pd.Timestamp(round(seconds * 1e6), unit="us")
    if tz is not None:
        ts = ts.tz_localize("UTC").tz_convert(tz)
    return ts.isoformat()


def _quiet_nan_reductions(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """numpy's nan-reductions warn on all-NaN columns; an all-null column is data, not an error."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _finite_or_none(value: Any) -> float | None:
    f = float(value)
    return None if math.isnan(f) else f


# ---------------------------------------------------------------- schema

def _categories(s: pd.Series) -> list[str] | None:
    if isinstance(s.dtype, pd.CategoricalDtype):
        values = [str(c) for c in s.cat.categories]
    else:
        try:
            uniques = pd.unique(s.dropna())
        except TypeError:  # lists, dicts, arrays: values without a category set
            return None
        if len(uniques) > MAX_CATEGORIES:
            return None
        values = sorted({str(v) for v in uniques})
    if len(values) > MAX_CATEGORIES or any(len(v) > MAX_CATEGORY_CHARS for v in values):
        return None
    return values


def _numeric_block(df: pd.DataFrame, names: list[str]) -> np.ndarray:
    if not names:
        return np.empty((len(df), 0))
    return np.column_stack([_numeric(df[n]) for n in names])


def infer_schema(X: Any) -> Schema:
    """Columns, dtypes, nullability, ranges and small category sets of `X`.

    DataFrames keep their column names (kind "dataframe"); numpy arrays and lists of rows
    get `f0..fn` (kind "array"); arrays of 3+ dimensions become one column `input` with
    the per-row `shape`."""
    data = _frame(X)
    if isinstance(data, np.ndarray):
        return _tensor_schema(data)
    kind: Literal["dataframe", "array"] = "dataframe" if isinstance(X, (pd.DataFrame, pd.Series)) else "array"
    dtypes = {name: _logical(data[name]) for name in data.columns}
    nulls = data.isna().any(axis=0)
    ranged = [n for n, d in dtypes.items() if d in ("float", "int", "datetime")]
    block = _numeric_block(data, ranged)
    lo = _quiet_nan_reductions(np.nanmin, block, axis=0) if len(block) else np.full(len(ranged), np.nan)
    hi = _quiet_nan_reductions(np.nanmax, block, axis=0) if len(block) else np.full(len(ranged), np.nan)
    bounds = dict(zip(ranged, zip(lo.tolist(), hi.tolist())))
    columns = []
    for name, dtype in dtypes.items():
        col = ColumnSchema(name=name, dtype=dtype, nullable=bool(nulls[name]))
        if name in bounds:
            mn, mx = bounds[name]
            if not math.isnan(mn):
                if dtype == "datetime":
                    tz = getattr(data[name].dtype, "tz", None)
                    col.min, col.max = _iso(mn, tz), _iso(mx, tz)
                else:
                    col.min, col.max = mn, mx
        elif dtype in ("string", "category"):
            col.categories = _categories(data[name])
        columns.append(col)
    shape: list[int | None] = [None] if kind == "array" and np.ndim(X) == 1 else [None, len(columns)]
    return Schema(columns=columns, kind=kind, shape=shape)


def _tensor_schema(arr: np.ndarray) -> Schema:
    dtype = _logical(pd.Series(arr.reshape(-1)[:1000]))
    col = ColumnSchema(name=TENSOR_COLUMN, dtype=dtype, shape=[None, *arr.shape[1:]])
    if dtype in ("float", "int") and arr.size:
        flat = arr.astype("float64", copy=False)
        col.nullable = bool(np.isnan(flat).any())
        col.min = _finite_or_none(_quiet_nan_reductions(np.nanmin, flat))
        col.max = _finite_or_none(_quiet_nan_reductions(np.nanmax, flat))
    return Schema(columns=[col], kind="array", shape=[None, *arr.shape[1:]])


def infer_output_schema(y_pred: Any) -> Schema:
    """The schema of a model's predictions; a flat array becomes one column `prediction`."""
    if isinstance(y_pred, (pd.DataFrame, pd.Series)):
        return infer_schema(y_pred)
    arr = _array(y_pred, "y_pred")
    if arr.ndim == 1:
        schema = infer_schema(pd.DataFrame({"prediction": arr}, copy=False))
        return Schema(columns=schema.columns, kind="array", shape=[None])
    return infer_schema(arr)


# ---------------------------------------------------------------- profile

def profile(X: Any, y: Any = None) -> Profile:
    """Reference statistics of X (and of the label y), for drift monitoring.

    Numeric statistics are computed over the finite values of all numeric columns at
    once; bool, string and category columns get value frequencies."""
    data = _frame(X)
    if isinstance(data, np.ndarray):
        flat = pd.DataFrame({TENSOR_COLUMN: data.reshape(-1)}, copy=False)
        features = _profile_frame(flat)
        rows = int(data.shape[0])
    else:
        features = _profile_frame(data)
        rows = len(data)
    label = None
    if y is not None:
        ys = _label_series(y)
        if len(ys) != rows:
            raise InvalidInput(f"y has {len(ys)} rows but X has {rows}", field="y")
        label = _profile_frame(ys.to_frame(), label=True)[0]
    return Profile(rows=rows, features=features, label=label)


def _label_series(y: Any) -> pd.Series:
    if isinstance(y, pd.Series):
        return y.rename(str(y.name) if y.name is not None else "label")
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise InvalidInput("y must have one column", field="y")
        return y.iloc[:, 0].rename(str(y.columns[0]))
    arr = _array(y, "y")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(f"y must be one-dimensional, got shape {arr.shape}", field="y")
    return pd.Series(arr, name="label", copy=False)


def _profile_frame(df: pd.DataFrame, *, label: bool = False) -> list[FeatureProfile]:
    kinds: dict[str, str] = {}
    for name in df.columns:
        dtype = _logical(df[name])
        numeric = dtype in ("float", "int", "datetime")
        if label and dtype == "int" and df[name].nunique() <= MAX_CATEGORIES:
            numeric = False  # class labels: their frequencies are what drifts
        kinds[name] = "numeric" if numeric else "categorical"
    numeric_names = [n for n, k in kinds.items() if k == "numeric"]
    stats = _numeric_stats(_numeric_block(df, numeric_names), numeric_names)
    out = []
    for name in df.columns:
        out.append(stats[name] if name in stats else _categorical_profile(name, df[name]))
    return out


def _numeric_stats(block: np.ndarray, names: list[str]) -> dict[str, FeatureProfile]:
    if not names:
        return {}
    n = block.shape[0]
    null = np.isnan(block)
    finite = np.isfinite(block)
    nulls = null.sum(axis=0)
    infinite = n - nulls - finite.sum(axis=0)
    vals = np.where(finite, block, np.nan)
    mean = _quiet_nan_reductions(np.nanmean, vals, axis=0)
    std = _quiet_nan_reductions(np.nanstd, vals, axis=0)
    lo = _quiet_nan_reductions(np.nanmin, vals, axis=0)
    hi = _quiet_nan_reductions(np.nanmax, vals, axis=0)
    qs = _quiet_nan_reductions(np.nanquantile, vals, list(QUANTILES.values()), axis=0) if n else vals[:0]
    out = {}
    for j, name in enumerate(names):
        fp = FeatureProfile(name=name, kind="numeric", count=int(n - nulls[j]), nulls=int(nulls[j]),
                            infinite=int(infinite[j]))
        if n and not math.isnan(lo[j]):
            fp.mean, fp.std, fp.min, fp.max = float(mean[j]), float(std[j]), float(lo[j]), float(hi[j])
            fp.quantiles = {k: float(qs[i, j]) for i, k in enumerate(QUANTILES)}
            fp.histogram = _histogram(vals[:, j], float(lo[j]), float(hi[j]))
        out[name] = fp
    return out


def _histogram(values: np.ndarray, lo: float, hi: float) -> Histogram:
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(values[~np.isnan(values)], bins=edges)
    return Histogram(edges=edges.tolist(), counts=counts.tolist())


def _categorical_profile(name: str, s: pd.Series) -> FeatureProfile:
    nulls = int(s.isna().sum())
    counts = s.value_counts(dropna=True, sort=True)
    freq: dict[str, int] = {}
    for value, c in counts.iloc[:MAX_FREQUENCIES].items():
        key = str(value)[:MAX_LABEL_CHARS]
        freq[key] = freq.get(key, 0) + int(c)
    rest = int(counts.iloc[MAX_FREQUENCIES:].sum())
    if rest:
        freq[OTHER] = freq.get(OTHER, 0) + rest
    return FeatureProfile(name=name, kind="categorical", count=len(s) - nulls, nulls=nulls, frequencies=freq)


# ---------------------------------------------------------------- fingerprint

def fingerprint(X: Any, y: Any = None) -> str:
    """BLAKE3 of a canonical byte form of the data: column names, logical dtypes and values.

    Identical data gives an identical fingerprint whatever the physical layout (row
    index, memory order, datetime resolution, object vs string dtype); any change to a
    name, a type or a value changes it. Row order is part of the data."""
    h = blake3.blake3()
    h.update(b"arsenale-fingerprint-v1\x00")
    _hash_data(h, X, "X")
    if y is not None:
        h.update(b"\x00label\x00")
        _hash_data(h, _label_series(y).to_frame(), "y")
    return str(h.hexdigest())


def _hash_data(h: Any, X: Any, field: str) -> None:
    if not isinstance(X, (pd.DataFrame, pd.Series)):
        X = _array(X, field)
    if isinstance(X, np.ndarray) and X.ndim >= 2 and X.dtype.kind in "fiub":
        arr = X.astype(X.dtype.newbyteorder("<"), copy=False)
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            arr = np.where(np.isnan(arr), np.nan, arr)  # one NaN bit pattern
        h.update(f"array|{arr.dtype.str}|{list(arr.shape)}\x00".encode())
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
        return
    data = _frame(X, field=field)
    if isinstance(data, np.ndarray):  # object tensor
        data = pd.DataFrame({TENSOR_COLUMN: data.reshape(-1)}, copy=False)
    h.update(f"table|{len(data)}|{data.shape[1]}\x00".encode())
    for name in data.columns:
        _hash_column(h, name, data[name])


def _hash_column(h: Any, name: str, s: pd.Series) -> None:
    dtype = _logical(s)
    encoded = name.encode("utf-8", "surrogatepass")
    h.update(len(encoded).to_bytes(8, "little") + encoded + dtype.encode() + b"\x00")
    null = s.isna().to_numpy()
    h.update(np.packbits(null).tobytes())
    if dtype == "float":
        h.update(np.where(null, 0.0, s.to_numpy(dtype="<f8", na_value=np.nan)).astype("<f8").tobytes())
    elif dtype in ("int", "bool") and (values := _int_bytes(s)) is not None:
        h.update(values)
    elif dtype == "datetime":
        tz = getattr(s.dtype, "tz", None)
        h.update(f"{tz}\x00".encode())
        us = _as_datetime(s).to_numpy(dtype="datetime64[us]").astype("<i8")
        h.update(np.where(null, 0, us).astype("<i8").tobytes())
    else:
        parts = [str(v).encode("utf-8", "surrogatepass") for v in s.astype(object).to_numpy()[~null]]
        h.update(np.fromiter((len(p) for p in parts), dtype="<i8", count=len(parts)).tobytes())
        h.update(b"".join(parts))


def _int_bytes(s: pd.Series) -> bytes | None:
    """Little-endian 64-bit integers (nulls as 0); None when they do not fit (then hashed as text)."""
    for dtype in ("<i8", "<u8"):
        try:
            return bytes(s.to_numpy(dtype=dtype, na_value=0).tobytes())
        except (OverflowError, TypeError, ValueError):
            continue
    return None


# ---------------------------------------------------------------- contract

def build_contract(X: Any = None, y: Any = None, model: Any = None, metrics: Mapping[str, Any] | None = None,
                   slices: list[str] | None = None) -> Contract:
    """A contract from training data: input schema, profile and fingerprint from X (and y);
    the output schema from `model.predict` on at most 100 rows of X."""
    contract = Contract(metrics=_metrics(metrics), slices=_slices(slices))
    if X is not None:
        contract.inputs = infer_schema(X)
        contract.profile = profile(X, y)
        contract.data_fingerprint = fingerprint(X, y)
        predict = getattr(model, "predict", None)
        if callable(predict):
            sample = X.iloc[:OUTPUT_SAMPLE_ROWS] if isinstance(X, (pd.DataFrame, pd.Series)) \
                else X[:OUTPUT_SAMPLE_ROWS]
            try:
                y_pred = predict(sample)
            except Exception as e:  # the user's model: any failure is a problem with what was given
                raise InvalidInput(f"model.predict failed on a sample of X: {type(e).__name__}: {e}",
                                   field="model") from e
            contract.outputs = infer_output_schema(y_pred)
    return contract


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidInput("metrics must be a mapping of name to number", field="metrics")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"metric names must be non-empty strings, got {key!r}", field="metrics")
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            out[key] = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"metric {key!r} must be a number, got {value!r}", field="metrics") from None
    return out


def _slices(slices: list[str] | None) -> list[str]:
    if slices is None:
        return []
    if isinstance(slices, str) or not all(isinstance(s, str) for s in slices):
        raise InvalidInput("slices must be a list of strings", field="slices")
    return list(slices)
