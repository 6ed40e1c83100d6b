"""Checking live inputs against a model's contract: the schema serving and monitoring enforce.

`validate_input` returns human-readable problems (missing or extra columns, wrong types,
values outside the training range, unknown categories, nulls where none were seen);
an empty list means the input honours the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from arsenale.errors import InvalidInput
from arsenale.registry.contract import (
    MAX_EXAMPLES,
    ColumnSchema,
    Contract,
    Schema,
    _array,
    _epoch_seconds,
    _frame,
    _logical,
    _numeric_block,
)

__all__ = ["validate_input"]

_COMPATIBLE: dict[str, set[str]] = {
    "float": {"float", "int"},
    "int": {"int", "float"},  # floats pass only when every value is integral (checked below)
    "bool": {"bool"},
    "string": {"string", "category"},
    "category": {"category", "string"},
    "datetime": {"datetime", "string"},  # ISO strings are how JSON carries timestamps
}


def validate_input(contract: Contract, X: Any) -> list[str]:
    """Human-readable problems of X against the contract's input schema; empty when X conforms.

    Reports missing and unexpected columns, wrong dtypes, nulls in never-null columns,
    values outside the training range and unknown categories. Never raises on bad data."""
    schema = contract.inputs
    if schema is None:
        return []
    try:
        return _validate(schema, X)
    except (TypeError, ValueError, OverflowError) as e:  # data too strange to compare at all
        return [f"input cannot be checked against the contract: {type(e).__name__}: {e}"]


def _validate(schema: Schema, X: Any) -> list[str]:
    if isinstance(X, Mapping) or (isinstance(X, list) and X and isinstance(X[0], Mapping)):
        try:
            X = pd.DataFrame(X)
        except (ValueError, TypeError) as e:
            return [f"input cannot be read as a table: {e}"]
    if schema.kind == "dataframe" and not isinstance(X, (pd.DataFrame, pd.Series)):
        shape = getattr(X, "shape", None)
        return [f"expected a table with columns {schema.names}, got {type(X).__name__}"
                + (f" of shape {tuple(shape)}" if shape is not None else "")]
    if schema.kind == "array" and isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    try:
        data = _frame(X)
    except InvalidInput as e:
        return [e.message]
    if isinstance(data, np.ndarray) or (schema.columns and schema.columns[0].shape is not None):
        return _validate_tensor(schema, X)
    if schema.kind == "array" and len(schema.shape) == 2 and data.shape[1] != schema.shape[1]:
        return [f"expected {schema.shape[1]} columns, got {data.shape[1]}"]
    problems = []
    expected = {c.name: c for c in schema.columns}
    missing = [n for n in expected if n not in data.columns]
    extra = [n for n in data.columns if n not in expected]
    if missing:
        problems.append(f"missing column(s): {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"unexpected column(s): {', '.join(map(repr, extra))}")
    present = [c for c in schema.columns if c.name in data.columns]
    numeric: list[ColumnSchema] = []
    for col in present:
        s = data[col.name]
        got = _logical(s)
        nulls = int(s.isna().sum())
        if nulls and not col.nullable:
            problems.append(f"column {col.name!r}: {nulls} null value(s), but it had none in training")
        if nulls == len(s):
            continue
        if got not in _COMPATIBLE[col.dtype]:
            problems.append(f"column {col.name!r}: expected {col.dtype}, got {got} ({s.dtype})")
            continue
        if col.dtype in ("float", "int"):
            numeric.append(col)
        elif col.dtype == "datetime":
            problems += _check_datetimes(col, s)
        if col.categories is not None:
            problems += _check_categories(col, s)
    problems += _check_numeric(numeric, data)
    return problems


def _check_numeric(cols: list[ColumnSchema], data: pd.DataFrame) -> list[str]:
    """One vectorised pass over every numeric column: integrality and range."""
    if not cols:
        return []
    block = _numeric_block(data, [c.name for c in cols])
    lo = np.array([c.min if isinstance(c.min, (int, float)) else -np.inf for c in cols], dtype="float64")
    hi = np.array([c.max if isinstance(c.max, (int, float)) else np.inf for c in cols], dtype="float64")
    with np.errstate(invalid="ignore"):
        below, above = block < lo, block > hi
        fractional = (block != np.floor(block)) & np.isfinite(block)
    problems = []
    for j in np.flatnonzero(below.any(axis=0) | above.any(axis=0) | fractional.any(axis=0)):
        col = cols[j]
        if col.dtype == "int" and fractional[:, j].any():
            ex = _examples(block[fractional[:, j], j])
            problems.append(f"column {col.name!r}: expected int, got non-integral values (e.g. {ex})")
            continue
        for mask, word, bound in ((below[:, j], "below the training minimum", col.min),
                                  (above[:, j], "above the training maximum", col.max)):
            if mask.any():
                problems.append(f"column {col.name!r}: {int(mask.sum())} value(s) {word} {bound!r} "
                                f"(e.g. {_examples(block[mask, j])})")
    return problems


def _check_datetimes(col: ColumnSchema, s: pd.Series) -> list[str]:
    seconds = _epoch_seconds(s)
    bad = np.isnan(seconds) & ~s.isna().to_numpy()
    if bad.any():
        return [(f"column {col.name!r}: expected datetime, got values that are not ISO timestamps "
                 f"(e.g. {_examples(s[bad].to_numpy())})")]
    problems = []
    for bound, word, cmp in ((col.min, "before the training minimum", np.less),
                             (col.max, "after the training maximum", np.greater)):
        if isinstance(bound, str):
            ts = pd.Timestamp(bound)
            limit = (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).value / 1e9
            with np.errstate(invalid="ignore"):
                mask = cmp(seconds, limit)
            if mask.any():
                problems.append(f"column {col.name!r}: {int(mask.sum())} timestamp(s) {word} {bound} "
                                f"(e.g. {_examples(s[mask].astype(str).to_numpy())})")
    return problems


def _check_categories(col: ColumnSchema, s: pd.Series) -> list[str]:
    values = s.dropna().astype(str)
    unknown = values[~values.isin(col.categories or [])]
    if unknown.empty:
        return []
    return [(f"column {col.name!r}: {len(unknown)} value(s) not seen in training "
             f"(e.g. {_examples(unknown.to_numpy())})")]


def _validate_tensor(schema: Schema, X: Any) -> list[str]:
    col = schema.columns[0]
    try:
        arr = _array(X, "X")
    except InvalidInput as e:
        return [e.message]
    want = col.shape or schema.shape
    if arr.ndim != len(want) or any(w is not None and w != g for w, g in zip(want[1:], arr.shape[1:])):
        return [f"expected an array of shape {tuple('*' if w is None else w for w in want)}, got {arr.shape}"]
    if arr.dtype.kind not in "fiub" and col.dtype in ("float", "int"):
        return [f"expected {col.dtype} values, got {arr.dtype}"]
    problems = []
    if arr.dtype.kind in "fiub" and arr.size:
        flat = arr.astype("float64", copy=False).reshape(-1)
        nulls = int(np.isnan(flat).sum())
        if nulls and not col.nullable:
            problems.append(f"{nulls} NaN value(s), but there were none in training")
        if isinstance(col.min, float) and (flat < col.min).any():
            problems.append(f"values below the training minimum {col.min!r} (e.g. {_examples(flat[flat < col.min])})")
        if isinstance(col.max, float) and (flat > col.max).any():
            problems.append(f"values above the training maximum {col.max!r} (e.g. {_examples(flat[flat > col.max])})")
    return problems


def _examples(values: Any) -> str:
    items = list(pd.unique(np.asarray(values).reshape(-1))[:MAX_EXAMPLES])
    return ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in items)
