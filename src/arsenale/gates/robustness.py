"""Robustness: does the model keep its answer under small noise, and does it answer at all (or does its
contract refuse first) when a value is missing, outside the training range or a category it never saw?

    [robustness]
    noise = 0.01              # Gaussian noise, std = noise × each numeric column's std; 0 turns the probe off
    min_stability = 0.99      # share of rows whose prediction must not change under that noise
    max_relative_change = 0.05  # regressors: "unchanged" means moving less than this share of the predictions' std
    missing = true            # a null in each column in turn
    out_of_range = true       # values beyond the training min/max
    unseen_categories = true  # a category never seen in training
    sample_rows = 1000
    seed = 0

    [[robustness.edge_cases]]  # rows that must be answered; a column left out is a missing value
    "mean radius" = 30.0
    expected = 0               # optional: the prediction, or [low, high] for a regressor

A live request is refused before it reaches the model when the contract says so, so a probe passes for a
column when either the contract refuses the perturbed rows (with its message) or the model answers them with
finite values. It fails when the model raises, or returns NaN or infinity, on rows the contract lets through.
Serving lets values outside the training range through (monitoring counts them; refusing them would turn drift
into an outage), so only the checks serving enforces count as "caught": types, nulls and categories.
"""

from __future__ import annotations

import math
import warnings
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator
from sklearn.base import is_classifier  # type: ignore[import-untyped]

from arsenale.errors import InvalidInput
from arsenale.gates.results import CheckResult, Strict, toml_float
from arsenale.registry.contract import ColumnSchema, Contract, Schema
from arsenale.registry.validation import validate_input

__all__ = ["RobustnessCheck", "check_robustness"]

PROBE_ROWS = 20  # rows sent per column and probe (missing, out-of-range, unseen category)
RANGE_MARGIN = 0.5  # out-of-range values lie this share of the training range beyond the min or max
UNSEEN = "__arsenale_unseen__"
EXPECTED = "expected"
MAX_NAMED = 10  # columns named in a message; details hold them all
MAX_ERROR_CHARS = 300

_SCALARS = (str, int, float, bool, datetime, date, time)


class RobustnessCheck(Strict):
    noise: float = Field(default=0.01, ge=0, description="noise std as a share of each numeric column's std; "
                         "0 turns the probe off")
    min_stability: float = Field(default=0.99, ge=0, le=1, description="share of rows whose prediction must not "
                                 "change")
    max_relative_change: float = Field(default=0.05, ge=0, description="regressors: the move, as a share of the "
                                       "predictions' std, that still counts as unchanged")
    missing: bool = True
    out_of_range: bool = True
    unseen_categories: bool = True
    edge_cases: list[dict[str, Any]] = Field(default_factory=list, description="rows that must be answered, "
                                             "each with an optional `expected` prediction")
    sample_rows: int = Field(default=1000, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=0)

    _number = field_validator("noise", "min_stability", "max_relative_change", mode="before")(toml_float)

    @field_validator("edge_cases")
    @classmethod
    def _rows(cls, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, row in enumerate(rows):
            if not any(key != EXPECTED for key in row):
                raise ValueError(f"edge_cases[{i}] names no column")
            for key, value in row.items():
                if key == EXPECTED:
                    _check_expected(value, i)
                elif not isinstance(value, _SCALARS):
                    raise ValueError(f"edge_cases[{i}].{key} must be a single value, not {type(value).__name__}")
        return rows


def _check_expected(value: Any, i: int) -> None:
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        fits = len(value) == 2 and len(numbers) == 2 and numbers[0] <= numbers[1]
    else:
        fits = isinstance(value, _SCALARS)
    if not fits:  # a ValueError, which pydantic reports with where it is
        raise ValueError(f"edge_cases[{i}].expected must be one prediction or a range [low, high]")


def check_robustness(check: RobustnessCheck, model: Any, X: pd.DataFrame,
                     contract: Contract | None = None) -> list[CheckResult]:
    """One result per probe the check turns on. `X` is evaluation data (its rows are perturbed, its numeric
    columns give the noise scale); `contract` is the candidate's, the one serving will enforce. A model that
    raises is a failed probe, never an exception; a policy that does not fit the data is `InvalidInput`."""
    if not isinstance(X, pd.DataFrame):
        raise InvalidInput(f"X must be a DataFrame, got {type(X).__name__}", field="X")
    if len(X) == 0 or X.shape[1] == 0:
        raise InvalidInput("X holds no rows or no columns: nothing to probe the model with", field="X")
    edges = [_edge_row(row, i, X) for i, row in enumerate(check.edge_cases)]  # bad policy fails before any work
    rng = np.random.default_rng(check.seed)
    sample = X
    if len(X) > check.sample_rows:
        sample = X.iloc[np.sort(rng.choice(len(X), check.sample_rows, replace=False))]
    sample = sample.reset_index(drop=True)
    columns = _serving_columns(contract)
    base = sample.iloc[:PROBE_ROWS]
    results = []
    if check.noise > 0:
        results.append(_noise(check, model, X, sample, rng))
    if check.missing:
        results.append(_probe("missing", "missing values", model, columns,
                              {c: _nulls(len(base), base[c]) for c in base.columns}, base))
    if check.out_of_range:
        results.append(_probe("out_of_range", "values outside the training range", model, columns,
                              _out_of_range(base, X, columns), base))
    if check.unseen_categories:
        results.append(_probe("unseen_categories", "categories never seen in training", model, columns,
                              _unseen(base, X), base))
    if edges:
        results.append(_edge_cases(check, model, edges, contract))
    return results


# ---------------------------------------------------------------- calling the model

class _BadAnswer(Exception):
    """The model returned, but not an answer serving could send back."""


def _predict(model: Any, rows: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():  # a model's warnings are not its answer
        warnings.simplefilter("ignore")
        out = np.asarray(model.predict(rows))
    if out.ndim == 0 or len(out) != len(rows):
        raise _BadAnswer(f"{out.size if out.ndim == 0 else len(out)} prediction(s) for {len(rows)} row(s)")
    invalid = _invalid(out)
    if invalid.any():
        raise _BadAnswer(f"{int(invalid.sum())} of {len(rows)} prediction(s) are NaN, infinite or null")
    return out


def _invalid(out: np.ndarray) -> np.ndarray:
    """Per row: is any of its outputs NaN, infinite or null?"""
    flat = out.reshape(len(out), -1)
    if flat.dtype.kind in "fc":
        bad = ~np.isfinite(flat)
    elif flat.dtype.kind == "O":
        bad = np.vectorize(lambda v: v is None or (isinstance(v, float) and not math.isfinite(v)),
                           otypes=[bool])(flat) if flat.size else np.zeros(flat.shape, bool)
    else:
        bad = np.zeros(flat.shape, bool)
    return np.asarray(bad.any(axis=1))


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if not isinstance(e, _BadAnswer) else str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:MAX_ERROR_CHARS]


def _answer(model: Any, rows: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """The predictions, or why there are none. Nothing the model raises escapes."""
    try:
        return _predict(model, rows), None
    except Exception as e:  # noqa: BLE001 - the user's model: any failure is a finding, not a crash
        return None, _error(e)


def _is_classifier(model: Any, predictions: np.ndarray) -> bool:
    raw = getattr(model, "raw", model)
    try:
        sklearn_says = bool(is_classifier(raw))
    except Exception:  # noqa: BLE001 - not a scikit-learn object: judge by what it returns
        sklearn_says = False
    return sklearn_says or hasattr(model, "predict_proba") or predictions.dtype.kind not in "fc"


# ---------------------------------------------------------------- noise

def _noise(check: RobustnessCheck, model: Any, X: pd.DataFrame, sample: pd.DataFrame,
           rng: np.random.Generator) -> CheckResult:
    name = "robustness.noise"
    noisy = sample.copy()
    perturbed = []
    for c in sample.columns:
        s = sample[c]
        if not _is_number(s):
            continue
        std = float(np.nanstd(X[c].to_numpy(dtype="float64", na_value=np.nan)))
        if not math.isfinite(std) or std == 0:
            continue
        values = s.to_numpy(dtype="float64", na_value=np.nan) + rng.normal(0.0, check.noise * std, len(s))
        # An int column stays an int column: serving refuses 3.2 where it expects an int.
        noisy[c] = pd.Series(np.rint(values)).astype(s.dtype) if pd.api.types.is_integer_dtype(s.dtype) \
            else values
        perturbed.append(str(c))
    if not perturbed:
        return CheckResult(name, True, "no numeric column varies in the data: no noise to add", None,
                           details={"rows": len(sample), "columns": []})
    before, error = _answer(model, sample)
    if before is None:
        return CheckResult(name, False, f"the model fails on the unperturbed rows: {error}", None,
                           details={"rows": len(sample), "error": error})
    after, error = _answer(model, noisy)
    if after is None:
        return CheckResult(name, False, f"the model fails under noise of {check.noise:g} × std: {error}", None,
                           details={"rows": len(sample), "error": error, "columns": perturbed})
    scale = f"Gaussian noise of {check.noise:g} × each numeric column's std"
    details: dict[str, Any] = {"rows": len(sample), "noise": check.noise, "columns": perturbed}
    if _is_classifier(model, before):
        same = (before.reshape(len(before), -1) == after.reshape(len(after), -1)).all(axis=1)
        what = "keep their predicted class"
        details["compared"] = "classes"
    else:
        spread = float(np.std(before.astype("float64")))
        tolerance = check.max_relative_change * spread
        moved = np.abs(after.astype("float64") - before.astype("float64")).reshape(len(before), -1).max(axis=1)
        same = moved <= tolerance
        what = (f"move less than {check.max_relative_change:.0%} of the predictions' std "
                f"({tolerance:.4g})")
        details.update(compared="values", tolerance=tolerance, max_change=float(moved.max()))
    stability = float(np.mean(same))
    details.update(changed=int((~same).sum()), stability=stability)
    passed = stability >= check.min_stability
    message = (f"{stability:.2%} of {len(sample)} rows {what} under {scale} "
               f"({'at least' if passed else 'below the minimum'} {check.min_stability:.2%})")
    return CheckResult(name, passed, message, stability, details=details)


def _is_number(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s.dtype)) and not pd.api.types.is_bool_dtype(s.dtype)


def _is_text(s: pd.Series) -> bool:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return True
    return bool(pd.api.types.is_string_dtype(s.dtype)) or (
        s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"))


# ---------------------------------------------------------------- missing, out of range, unseen

def _serving_columns(contract: Contract | None) -> dict[str, ColumnSchema]:
    """The contract's table columns as serving enforces them: without range bounds, which it lets through."""
    if contract is None or contract.inputs is None:
        return {}
    return {c.name: c.model_copy(update={"min": None, "max": None})
            for c in contract.inputs.columns if c.shape is None}


def _refusal(column: ColumnSchema | None, values: pd.Series) -> str | None:
    """The contract's first objection to these values of one column, if it has one."""
    if column is None:
        return None
    one = Contract(inputs=Schema(columns=[column], kind="dataframe", shape=[None, 1]))
    problems = validate_input(one, values.to_frame(name=column.name))
    return problems[0] if problems else None


def _probe(kind: str, what: str, model: Any, columns: dict[str, ColumnSchema], values: dict[Any, pd.Series],
           base: pd.DataFrame) -> CheckResult:
    name = f"robustness.{kind}"
    if not values:
        kinds = {"out_of_range": "numeric", "unseen_categories": "text or category"}
        return CheckResult(name, True, f"no {kinds.get(kind, '')} column to probe".replace("  ", " "), None,
                           details={"rows": len(base), "columns": {}})
    outcomes: dict[str, str] = {}
    failed: list[str] = []
    errors: list[str] = []
    caught = 0
    for c, column in values.items():
        refusal = _refusal(columns.get(str(c)), column)
        if refusal is not None:
            outcomes[str(c)] = f"caught by contract: {refusal}"
            caught += 1
            continue
        rows = base.copy()
        rows[c] = column
        _, error = _answer(model, rows)
        if error is None:
            outcomes[str(c)] = "answered"
        else:
            outcomes[str(c)] = f"failed: {error}"
            failed.append(str(c))
            errors.append(error)
    details = {"rows": len(base), "columns": outcomes}
    share = 1 - len(failed) / len(values)
    if failed:
        message = (f"the model fails on {what} that the contract lets through, in {len(failed)} of {len(values)} "
                   f"column(s): {_names(failed)} (first error: {errors[0]})")
        return CheckResult(name, False, message, share, details=details)
    parts = [f"the model answers in {len(values) - caught} column(s)" if caught < len(values) else "",
             f"the contract refuses them in {caught}" if caught else ""]
    message = f"{what}: " + ", ".join(p for p in parts if p)
    return CheckResult(name, True, message, share, details=details)


def _names(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:MAX_NAMED]))
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def _nulls(n: int, like: pd.Series) -> pd.Series:
    """n missing values, typed as a column like `like` would hold them."""
    dtype = like.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical([None] * n, dtype=dtype))
    if _is_number(like):
        return pd.Series(np.full(n, np.nan))
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return pd.Series(pd.NaT, index=range(n), dtype=dtype)
    return pd.Series([None] * n, dtype=object)


def _out_of_range(base: pd.DataFrame, X: pd.DataFrame, columns: dict[str, ColumnSchema]) -> dict[Any, pd.Series]:
    """Per numeric column: every other row below the training minimum, the rest above the maximum, by a margin.
    The bounds are the contract's when it has them (the training data's), else the evaluation data's."""
    out: dict[Any, pd.Series] = {}
    for c in base.columns:
        if not _is_number(base[c]):
            continue
        schema = columns.get(str(c))
        lo, hi = _bounds(X[c])
        if schema is not None and isinstance(schema.min, float) and isinstance(schema.max, float):
            lo, hi = schema.min, schema.max
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        margin = RANGE_MARGIN * ((hi - lo) or max(abs(hi), 1.0))
        below, above = lo - margin, hi + margin
        if pd.api.types.is_integer_dtype(base[c].dtype):
            below, above = math.floor(below), math.ceil(above)
        values = pd.Series(np.where(np.arange(len(base)) % 2 == 0, below, above))
        out[c] = values.astype(base[c].dtype) if pd.api.types.is_integer_dtype(base[c].dtype) else values
    return out


def _bounds(s: pd.Series) -> tuple[float, float]:
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (math.nan, math.nan)


def _unseen(base: pd.DataFrame, X: pd.DataFrame) -> dict[Any, pd.Series]:
    out: dict[Any, pd.Series] = {}
    for c in base.columns:
        if not _is_text(base[c]):
            continue
        seen = set(X[c].dropna().astype(str))
        value = UNSEEN
        while value in seen:
            value += "_"
        if isinstance(base[c].dtype, pd.CategoricalDtype):
            categories = [*base[c].cat.categories, value]
            out[c] = pd.Series(pd.Categorical([value] * len(base), categories=categories))
        else:
            out[c] = pd.Series([value] * len(base), dtype=base[c].dtype)
    return out


# ---------------------------------------------------------------- edge cases

def _edge_row(row: dict[str, Any], i: int, X: pd.DataFrame) -> tuple[pd.DataFrame, Any]:
    """A user's row as a one-row frame with X's columns and dtypes; a column it leaves out is missing."""
    by_name = {str(c): c for c in X.columns}
    unknown = [k for k in row if k != EXPECTED and k not in by_name]
    if unknown:
        raise InvalidInput(f"robustness.edge_cases[{i}] names column(s) the data does not have: "
                           f"{_names(unknown)}", field=f"robustness.edge_cases[{i}]")
    data = {}
    for key, c in by_name.items():
        data[c] = _nulls(1, X[c]) if key not in row else _like(row[key], X[c])
    return pd.DataFrame(data), row.get(EXPECTED)


def _like(value: Any, like: pd.Series) -> pd.Series:
    """One value in `like`'s dtype when it fits exactly; as given otherwise (the contract then judges it)."""
    raw = pd.Series([value])
    if pd.api.types.is_bool_dtype(raw.dtype) != pd.api.types.is_bool_dtype(like.dtype):
        return raw  # True is not 1.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cast = raw.astype(like.dtype)
        if cast.astype(object).tolist() == raw.astype(object).tolist():
            return cast
    except (TypeError, ValueError, OverflowError):
        pass
    return raw


def _matches(prediction: Any, expected: Any) -> bool:
    value = prediction.item() if isinstance(prediction, np.generic) else prediction
    if isinstance(expected, list):
        return isinstance(value, (int, float)) and expected[0] <= value <= expected[1]
    if isinstance(expected, (int, float)) and not isinstance(expected, bool) and isinstance(value, (int, float)):
        return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    return bool(value == expected) or str(value) == str(expected)


def _edge_cases(check: RobustnessCheck, model: Any, edges: list[tuple[pd.DataFrame, Any]],
                contract: Contract | None) -> CheckResult:
    serving = None
    if contract is not None and contract.inputs is not None:
        serving = contract.model_copy(update={"inputs": contract.inputs.model_copy(update={
            "columns": [c.model_copy(update={"min": None, "max": None}) for c in contract.inputs.columns]})})
    outcomes: list[str] = []
    failed: list[int] = []
    for i, (row, expected) in enumerate(edges):
        outcome, ok = _edge_case(model, row, expected, serving)
        outcomes.append(outcome)
        if not ok:
            failed.append(i)
    details = {"rows": _jsonable(check.edge_cases), "outcomes": outcomes}
    share = 1 - len(failed) / len(edges)
    if failed:
        first = failed[0]
        message = (f"{len(failed)} of {len(edges)} edge case(s) fail: "
                   f"{', '.join(f'edge_cases[{i}]' for i in failed[:MAX_NAMED])} (edge_cases[{first}]: "
                   f"{outcomes[first]})")
        return CheckResult("robustness.edge_cases", False, message, share, details=details)
    return CheckResult("robustness.edge_cases", True, f"all {len(edges)} edge case(s) pass", share,
                       details=details)


def _edge_case(model: Any, row: pd.DataFrame, expected: Any, serving: Contract | None) -> tuple[str, bool]:
    """What happened to one edge row, and whether that is acceptable. A row with an expected prediction must be
    answered with it; one without passes when the contract refuses it or the model answers."""
    problems = validate_input(serving, row) if serving is not None else []
    if problems:
        if expected is not None:
            return f"failed: expected {expected!r}, but the contract refuses the row: {problems[0]}", False
        return f"caught by contract: {problems[0]}", True
    predictions, error = _answer(model, row)
    if predictions is None:
        return f"failed: {error}", False
    got = predictions[0]
    shown = got.tolist() if isinstance(got, (np.ndarray, np.generic)) else got
    if expected is not None and not _matches(got, expected):
        return f"failed: expected {expected!r}, got {shown!r}", False
    return f"answered {shown!r}", True


def _jsonable(value: Any) -> Any:
    """Edge rows may hold TOML dates and times: details must stay JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value
