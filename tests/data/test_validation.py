"""Data validation as a pure function: every check type, the failing-row mask and reasons, schema inference
and parsing; a property test holds the vectorized checks to a plain row-by-row reference."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_wine

from arsenale.data.validation import ColumnRule, DataSchema, ValidationReport, infer_data_schema, validate
from arsenale.errors import InvalidInput


def failed(report: ValidationReport) -> dict[tuple[str, str | None], int]:
    return {(c.check, c.column): c.failing_rows for c in report.failures}


def test_inferred_schema_accepts_its_reference_and_roundtrips_as_json() -> None:
    wine = load_wine(as_frame=True).frame
    schema = infer_data_schema(wine, unique=None)
    report = validate(wine, schema)
    assert report.passed and report.failing_rows == 0 and report.rows == len(wine)
    assert report.mask is not None and not report.mask.any()
    assert DataSchema.parse(schema.to_json()) == schema
    rules = {c.name: c for c in schema.columns}
    assert rules["alcohol"].type == "float" and rules["alcohol"].min == wine["alcohol"].min()
    assert rules["target"].type == "int" and not rules["target"].nullable


def test_each_row_check_counts_examples_and_reasons() -> None:
    df = pd.DataFrame({"id": [1, 2, 2, 4, 5], "amount": [10.0, -1.0, 5.0, np.inf, np.nan],
                       "country": ["it", "fr", "xx", None, "it"]})
    schema = DataSchema(columns=[
        ColumnRule(name="id", type="int", unique=True),
        ColumnRule(name="amount", type="float", nullable=False, min=0, max=100),
        ColumnRule(name="country", type="string", categories=["it", "fr"]),
    ])
    report = validate(df, schema)
    assert not report.passed
    assert failed(report) == {("unique", "id"): 2, ("not_null", "amount"): 1, ("min", "amount"): 1,
                              ("max", "amount"): 1, ("categories", "country"): 1}
    by_check = {(c.check, c.column): c for c in report.checks}
    assert by_check[("min", "amount")].examples == [-1.0]
    assert by_check[("max", "amount")].examples == [math.inf]
    assert by_check[("categories", "country")].examples == ["xx"]
    assert by_check[("unique", "id")].examples == [2]
    assert report.mask is not None and report.mask.tolist() == [False, True, True, True, True]
    assert report.reasons is not None
    assert report.reasons.tolist() == ["", "unique(id); min(amount)", "unique(id); categories(country)",
                                       "max(amount)", "not_null(amount)"]
    assert report.failing_rows == 4
    # The JSON form keeps counts and examples; the mask stays with the computed report.
    again = ValidationReport.model_validate_json(report.model_dump_json())
    assert again.failing_rows == 4 and again.mask is None
    assert json.loads(report.model_dump_json())["checks"]  # strict JSON: inf became "Infinity"


def test_table_checks_type_missing_extra_and_row_count() -> None:
    df = pd.DataFrame({"a": ["1", "2"], "b": [1.5, 2.5], "extra": [0, 0]})
    schema = DataSchema(columns=[ColumnRule(name="a", type="int", min=0), ColumnRule(name="b", type="int"),
                                 ColumnRule(name="gone"), ColumnRule(name="optional", required=False)],
                        min_rows=3, allow_extra_columns=False)
    report = validate(df, schema)
    assert {(c.check, c.column) for c in report.table_failures} == {
        ("row_count", None), ("extra_columns", None), ("type", "a"), ("type", "b"), ("missing_column", "gone")}
    assert report.failing_rows == 0 and report.mask is not None and not report.mask.any()
    assert all(c.level == "table" for c in report.failures)
    assert validate(df.iloc[:0], DataSchema(max_rows=0)).passed


def test_type_compatibility() -> None:
    df = pd.DataFrame({"i": [1.0, None, 3.0], "f": [1, 2, 3], "c": pd.Categorical(["a", "b", "a"]),
                       "empty": [None, None, None], "frac": [1.5, None, 2.0]})
    ok = DataSchema(columns=[ColumnRule(name="i", type="int"), ColumnRule(name="f", type="float"),
                             ColumnRule(name="c", type="string"), ColumnRule(name="empty", type="datetime")])
    assert validate(df, ok).passed
    assert not validate(df, DataSchema(columns=[ColumnRule(name="frac", type="int")])).passed


def test_datetime_bounds_and_arrow_input() -> None:
    when = pd.to_datetime(["2024-01-01", "2024-06-01", None, "2025-01-01"]).tz_localize("Europe/Rome")
    table = pa.table({"when": pa.array(when)})
    schema = DataSchema(columns=[ColumnRule(name="when", type="datetime", min="2024-01-01T00:00:00+01:00",
                                            max="2024-12-31")])
    report = validate(table, schema)
    assert failed(report) == {("max", "when"): 1}
    assert report.reasons is not None and report.reasons.tolist()[3] == "max(when)"
    inferred = infer_data_schema(table)
    assert validate(table, inferred).passed


def test_min_max_on_text_is_a_schema_error() -> None:
    report = validate(pd.DataFrame({"s": ["a"]}), {"columns": [{"name": "s", "min": 1}]})
    assert failed(report) == {("min", "s"): 0}


@pytest.mark.parametrize("bad", [
    '{"columns": [{"name": "x", "type": "decimal"}]}',
    '{"columns": [{"name": ""}]}',
    '{"columns": [{"name": "x", "min": "low"}]}',
    '{"columns": [{"name": "t", "type": "datetime", "max": "yesterday-ish"}]}',
    '{"min_rows": 5, "max_rows": 2}',
    '{"columns": [{"name": "x", "nullable": "perhaps"}]}',
    '{"columns": [{"name": "x", "colour": "red"}]}',
    "[1, 2]",
    "",
])
def test_malformed_schemas_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate(pd.DataFrame({"x": [1]}), bad)
    assert err.value.field == "schema" and "schema" in err.value.message


def test_infer_unique_and_row_bounds() -> None:
    df = pd.DataFrame({"id": [1, 2, 3], "x": [1, 1, 2]})
    schema = infer_data_schema(df, unique=["id"], row_bounds=True)
    assert [c.unique for c in schema.columns] == [True, False]
    assert (schema.min_rows, schema.max_rows) == (3, 3)
    with pytest.raises(InvalidInput):
        infer_data_schema(df, unique=["nope"])


# ---- property: the vectorized checks equal a row-by-row reference -------------------------------------

def reference(df: pd.DataFrame, schema: DataSchema) -> tuple[list[bool], list[str]]:
    """The plainest possible implementation: one row at a time, in pure Python."""
    reasons: list[str] = []
    for i in range(len(df)):
        why = []
        for rule in schema.columns:
            col = df[rule.name]
            v = col.iloc[i]
            null = v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
            if not rule.nullable and null:
                why.append(f"not_null({rule.name})")
            if rule.min is not None and not null and float(v) < float(rule.min):
                why.append(f"min({rule.name})")
            if rule.max is not None and not null and float(v) > float(rule.max):
                why.append(f"max({rule.name})")
            if rule.categories is not None and not null and str(v) not in rule.categories:
                why.append(f"categories({rule.name})")
            if rule.unique and not null:
                others = [w for j, w in enumerate(col.tolist()) if j != i and not pd.isna(w)]
                if v in others:
                    why.append(f"unique({rule.name})")
        reasons.append("; ".join(why))
    return [bool(r) for r in reasons], reasons


_floats = st.one_of(st.none(), st.floats(-5, 5, allow_nan=False, width=16), st.just(math.inf),
                    st.just(-math.inf), st.just(math.nan))


@st.composite
def frames_and_schemas(draw: Any) -> tuple[pd.DataFrame, DataSchema]:
    n = draw(st.integers(0, 25))
    ints = draw(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=n, max_size=n))
    floats = draw(st.lists(_floats, min_size=n, max_size=n))
    texts = draw(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dé"])), min_size=n, max_size=n))
    df = pd.DataFrame({"i": pd.Series(ints, dtype="float64") if None in ints else pd.Series(ints, dtype="int64"),
                       "f": pd.Series(floats, dtype="float64"), "s": pd.Series(texts, dtype=object)})
    bound = st.one_of(st.none(), st.integers(-4, 4).map(float))
    rules = [ColumnRule(name=name, nullable=draw(st.booleans()), unique=draw(st.booleans()),
                        min=draw(bound), max=draw(bound)) for name in ("i", "f")]
    rules.append(ColumnRule(name="s", nullable=draw(st.booleans()), unique=draw(st.booleans()),
                            categories=draw(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "dé"]),
                                                                          unique=True)))))
    return df, DataSchema(columns=draw(st.permutations(rules)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_and_schemas())
def test_mask_and_reasons_match_a_row_by_row_reference(case: tuple[pd.DataFrame, DataSchema]) -> None:
    df, schema = case
    report = validate(df, schema)
    mask, reasons = reference(df, schema)
    assert report.mask is not None and report.reasons is not None
    assert report.mask.tolist() == mask
    assert report.reasons.tolist() == reasons
    assert report.failing_rows == sum(mask)
    for check in report.checks:
        if check.level == "row":
            assert check.failing_rows == sum(f"{check.check}({check.column})" in r.split("; ") for r in reasons)
