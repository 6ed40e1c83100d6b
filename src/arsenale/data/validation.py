"""Data validation: a `DataSchema` (hand-written JSON or inferred from reference data) and `validate`.

    schema = infer_data_schema(reference_df)          # or DataSchema.from_json(Path("schema.json").read_text())
    report = validate(new_df, schema)                  # a pure function: no store, no I/O
    report.passed, report.failing_rows, report.checks  # per-check counts and example values
    report.mask, report.reasons                        # per row: fails at all? and why ("max(amount); not_null(age)")

Checks, per column: `type` (logical dtype, see `arsenale.registry.contract`), `missing_column`, `not_null`,
`min`, `max`, `categories` (allowed values, compared as text) and `unique` (every row holding a duplicated
value fails); per table: `row_count` (min_rows/max_rows) and `extra_columns` (when not allowed).

Row-level checks (not_null, min, max, categories, unique) give a boolean mask over the rows; table-level
checks (type, missing_column, extra_columns, row_count) fail the table as a whole and mark no row, since no
subset of rows would fix them. Every check is one vectorized numpy/pandas operation over its column, and
each column is visited once; there is no per-row Python code, so monitoring can run the same checks on
serving traffic (training/serving skew) at the cost of a few array passes.

Null semantics: NaN, None and NaT are nulls; a null never fails min, max, categories or unique (only
not_null). ±inf are values: +inf fails a finite max, -inf a finite min.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from arsenale.errors import InvalidInput
from arsenale.registry.contract import _as_datetime, _frame, _logical, _numeric, infer_schema

__all__ = ["CheckResult", "ColumnRule", "DataSchema", "ValidationReport", "infer_data_schema", "validate"]

Dtype = Literal["float", "int", "bool", "string", "category", "datetime"]
MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 200

# What a declared type accepts: ints are valid floats; text and categoricals are interchangeable.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "float": frozenset({"float", "int"}),
    "int": frozenset({"int"}),
    "bool": frozenset({"bool"}),
    "string": frozenset({"string", "category"}),
    "category": frozenset({"category", "string"}),
    "datetime": frozenset({"datetime"}),
}
ROW_CHECKS = ("not_null", "min", "max", "categories", "unique")


class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")


class ColumnRule(_Model):
    """What one column must satisfy. Unset fields are not checked."""

    name: str = Field(min_length=1)
    type: Dtype | None = None
    nullable: bool = True
    min: float | str | None = Field(default=None, description="inclusive; an ISO timestamp for datetimes")
    max: float | str | None = Field(default=None, description="inclusive; an ISO timestamp for datetimes")
    categories: list[str] | None = Field(default=None, description="the allowed values, compared as text")
    unique: bool = False
    required: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> ColumnRule:
        for attr in ("min", "max"):
            value = getattr(self, attr)
            if isinstance(value, str):
                if self.type == "datetime":
                    try:
                        pd.Timestamp(value)
                    except ValueError:
                        raise ValueError(f"{attr} of column {self.name!r} is not an ISO timestamp") from None
                else:
                    try:
                        setattr(self, attr, float(value))
                    except ValueError:
                        raise ValueError(f"{attr} of column {self.name!r} must be a number") from None
        return self


class DataSchema(_Model):
    """The rules a dataset must satisfy; write it by hand as JSON or infer it with `infer_data_schema`."""

    columns: list[ColumnRule] = Field(default_factory=list)
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    allow_extra_columns: bool = True

    @model_validator(mode="after")
    def _unique_names(self) -> DataSchema:
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"columns listed twice: {dup}")
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError("min_rows is larger than max_rows")
        return self

    @classmethod
    def parse(cls, value: Any, field: str = "schema") -> DataSchema:
        """A schema from a `DataSchema`, a mapping or JSON text; anything malformed is `InvalidInput`."""
        if isinstance(value, DataSchema):
            return value
        try:
            if isinstance(value, (str, bytes)):
                return cls.model_validate_json(value)
            if isinstance(value, Mapping):
                return cls.model_validate(dict(value))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ())) or "schema"
            raise InvalidInput(f"malformed data schema at {where}: {err.get('msg')}", field=field) from None
        raise InvalidInput(f"a data schema must be a DataSchema, a JSON object or JSON text, "
                           f"not {type(value).__name__}", field=field)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_defaults=True)


class CheckResult(_Model):
    check: str
    column: str | None = None
    level: Literal["row", "table"] = "row"
    passed: bool
    failing_rows: int = 0
    examples: list[float | int | bool | str | None] = Field(default_factory=list)
    message: str = ""


class ValidationReport(_Model):
    """The outcome of `validate`; `mask` and `reasons` exist only on a report just computed (not on JSON)."""

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="ignore")

    passed: bool
    rows: int
    failing_rows: int = Field(description="rows failing at least one row-level check")
    checks: list[CheckResult] = Field(default_factory=list)
    _mask: np.ndarray | None = PrivateAttr(default=None)
    _reasons: np.ndarray | None = PrivateAttr(default=None)

    @property
    def mask(self) -> np.ndarray | None:
        """True for each row that fails a row-level check."""
        return self._mask

    @property
    def reasons(self) -> np.ndarray | None:
        """Per row, the failed checks as "check(column)" joined by "; " ("" for a clean row)."""
        return self._reasons

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def table_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed and c.level == "table"]


# ---------------------------------------------------------------- inference

def infer_data_schema(data: Any, *, unique: list[str] | None = None,
                      row_bounds: bool = False) -> DataSchema:
    """A schema that `data` passes: its columns' types, nullability, ranges and (small) category sets.

    `unique` names columns to mark unique (never guessed from a sample); `row_bounds` pins the row count
    to the reference's."""
    frame = _as_frame(data)
    inferred = infer_schema(frame)
    unique_set = set(unique or [])
    unknown = unique_set - {c.name for c in inferred.columns}
    if unknown:
        raise InvalidInput(f"unique names columns the data does not have: {sorted(unknown)}", field="unique")
    rules = [ColumnRule(name=c.name, type=c.dtype, nullable=c.nullable, min=c.min, max=c.max,
                        categories=c.categories, unique=c.name in unique_set) for c in inferred.columns]
    n = len(frame)
    return DataSchema(columns=rules, min_rows=n if row_bounds else None, max_rows=n if row_bounds else None)


# ---------------------------------------------------------------- validation

def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        frame = _frame(data, field="data")
    else:
        to_pandas = getattr(data, "to_pandas", None)  # a pyarrow Table
        if callable(to_pandas) and not isinstance(data, pd.Series):
            frame = _frame(to_pandas(), field="data")
        else:
            frame = _frame(data, field="data")
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput("data must be a table (a DataFrame or an Arrow table), not a tensor", field="data")
    return frame


def _scalar(value: Any) -> float | int | bool | str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)[:MAX_EXAMPLE_CHARS]


def _examples(values: pd.Series, mask: np.ndarray) -> list[float | int | bool | str | None]:
    picked = values.to_numpy()[mask][:MAX_EXAMPLES * 4]
    out: list[float | int | bool | str | None] = []
    for v in picked:  # at most 20 values: examples for the report, not a pass over the data
        s = _scalar(v)
        if s not in out:
            out.append(s)
        if len(out) == MAX_EXAMPLES:
            break
    return out


def _datetime_us(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    arr = _as_datetime(s).to_numpy(dtype="datetime64[us]")
    nat = np.isnat(arr)
    return arr.astype("int64"), nat


def _bound_us(value: float | str) -> int:
    if isinstance(value, (int, float)):
        return round(float(value) * 1e6)
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value) // 1000


def _type_ok(declared: str, actual: str, s: pd.Series, null: np.ndarray) -> bool:
    if actual in _COMPATIBLE[declared] or null.all():
        return True
    if declared == "int" and actual == "float":
        # Integers with nulls arrive as floats (pandas): fine while every value is whole.
        vals = s.to_numpy(dtype="float64", na_value=np.nan)[~null]
        return bool(np.all(np.isfinite(vals) & (vals == np.round(vals))))
    return False


class _Collector:
    def __init__(self, n: int) -> None:
        self.n = n
        self.checks: list[CheckResult] = []
        self.mask = np.zeros(n, dtype=bool)
        self.reasons = np.full(n, "", dtype=object)

    def row(self, check: str, column: str, failing: np.ndarray, values: pd.Series, message: str) -> None:
        count = int(failing.sum())
        result = CheckResult(check=check, column=column, level="row", passed=count == 0, failing_rows=count)
        if count:
            result.examples = _examples(values, failing)
            result.message = f"{message} in {count} row{'s' if count != 1 else ''}"
            self.mask |= failing
            self.reasons[failing] = self.reasons[failing] + f"{check}({column}); "
        self.checks.append(result)

    def table(self, check: str, column: str | None, passed: bool, message: str = "") -> None:
        self.checks.append(CheckResult(check=check, column=column, level="table", passed=passed,
                                       message="" if passed else message))


def validate(data: Any, schema: DataSchema | Mapping[str, Any] | str) -> ValidationReport:
    """Check `data` (a DataFrame or an Arrow table) against `schema`; a pure function of its inputs."""
    rules = DataSchema.parse(schema)
    frame = _as_frame(data)
    n = len(frame)
    out = _Collector(n)
    if rules.min_rows is not None or rules.max_rows is not None:
        ok = (rules.min_rows is None or n >= rules.min_rows) and (rules.max_rows is None or n <= rules.max_rows)
        out.table("row_count", None, ok, f"{n} rows; expected between {rules.min_rows if rules.min_rows is not None else 0} "
                                         f"and {rules.max_rows if rules.max_rows is not None else 'any number of'}")
    declared = {c.name for c in rules.columns}
    if not rules.allow_extra_columns:
        extra = [str(c) for c in frame.columns if c not in declared]
        out.table("extra_columns", None, not extra, f"columns not in the schema: {extra[:20]}")
    for rule in rules.columns:
        if rule.name not in frame.columns:
            if rule.required:
                out.table("missing_column", rule.name, False, f"column {rule.name!r} is missing")
            continue
        _check_column(out, rule, frame[rule.name])
    reasons = pd.Series(out.reasons, dtype=object).str.removesuffix("; ").to_numpy(dtype=object) if n else \
        out.reasons
    report = ValidationReport(passed=all(c.passed for c in out.checks), rows=n,
                              failing_rows=int(out.mask.sum()), checks=out.checks)
    report._mask = out.mask
    report._reasons = reasons
    return report


def _check_column(out: _Collector, rule: ColumnRule, s: pd.Series) -> None:
    name = rule.name
    null = s.isna().to_numpy(dtype=bool)
    actual = _logical(s)
    if rule.type is not None:
        ok = _type_ok(rule.type, actual, s, null)
        out.table("type", name, ok, f"column {name!r} holds {actual} values; the schema says {rule.type}")
        if not ok:
            return  # range and category checks on the wrong type would only add noise
    if not rule.nullable:
        out.row("not_null", name, null, s, "null")
    if rule.min is not None or rule.max is not None:
        kind = rule.type or actual
        if kind == "datetime":
            values, nat = _datetime_us(s)
            lo = None if rule.min is None else _bound_us(rule.min)
            hi = None if rule.max is None else _bound_us(rule.max)
            if lo is not None:
                out.row("min", name, ~nat & (values < lo), s, f"before {rule.min}")
            if hi is not None:
                out.row("max", name, ~nat & (values > hi), s, f"after {rule.max}")
        elif kind in ("float", "int"):
            values = _numeric(s)
            with np.errstate(invalid="ignore"):
                if rule.min is not None:
                    out.row("min", name, values < float(rule.min), s, f"below {rule.min}")
                if rule.max is not None:
                    out.row("max", name, values > float(rule.max), s, f"above {rule.max}")
        else:
            out.table("min", name, False, f"min/max apply to numbers and datetimes, not {kind} column {name!r}")
    if rule.categories is not None:
        text = s if actual == "string" and s.dtype != object else s.astype(str)
        allowed = text.isin(rule.categories).to_numpy(dtype=bool)
        out.row("categories", name, ~null & ~allowed, s, f"values outside {_short(rule.categories)}")
    if rule.unique:
        dup = s.duplicated(keep=False).to_numpy(dtype=bool)
        out.row("unique", name, ~null & dup, s, "duplicated values")


def _short(values: list[str], limit: int = 8) -> str:
    shown = json.dumps(values[:limit], ensure_ascii=False)
    return shown if len(values) <= limit else shown[:-1] + f", … ({len(values)} in all)]"
