"""Model contracts: schema and profile inferred from data, a stable fingerprint, input validation, JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression

from arsenale.errors import InvalidInput
from arsenale.registry import contract as contract_module
from arsenale.registry.contract import (
    Contract,
    build_contract,
    fingerprint,
    infer_output_schema,
    infer_schema,
    profile,
)
from arsenale.registry.validation import validate_input


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    return data.data, data.target


def mixed_frame(n: int = 60) -> pd.DataFrame:
    """Every logical dtype, some nullable, built from iris so the values are real."""
    iris = load_iris(as_frame=True)
    X = iris.data.iloc[:n].reset_index(drop=True)
    species = np.array(iris.target_names)[iris.target.iloc[:n].to_numpy()]
    return pd.DataFrame({
        "petals": (X["petal length (cm)"] * 10).round().astype("int64"),
        "sepal": X["sepal width (cm)"].astype("float64"),
        "wide": X["sepal width (cm)"] > 3.0,
        "species": pd.Categorical(species),
        "site": np.where(np.arange(n) % 3 == 0, "north", "south").astype(object),
        "seen": pd.date_range("2024-01-01", periods=n, freq="D"),
        "seen_utc": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        "maybe": np.where(np.arange(n) % 7 == 0, np.nan, X["sepal length (cm)"]),
        "count": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "note": pd.array([f"note {i}" for i in range(n)], dtype="string"),
    })


def test_public_names() -> None:
    assert sorted(contract_module.__all__) == sorted([
        "ColumnSchema", "Contract", "FeatureProfile", "Histogram", "Profile", "Schema", "build_contract",
        "fingerprint", "infer_output_schema", "infer_schema", "profile"])


# ---------------------------------------------------------------- schema

def test_infer_schema_of_a_dataframe() -> None:
    df = mixed_frame()
    schema = infer_schema(df)
    assert schema.kind == "dataframe" and schema.shape == [None, df.shape[1]]
    cols = {c.name: c for c in schema.columns}
    assert list(cols) == list(df.columns)
    assert {n: c.dtype for n, c in cols.items()} == {
        "petals": "int", "sepal": "float", "wide": "bool", "species": "category", "site": "string",
        "seen": "datetime", "seen_utc": "datetime", "maybe": "float", "count": "int", "note": "string"}
    assert {n for n, c in cols.items() if c.nullable} == {"maybe", "count"}
    assert (cols["petals"].min, cols["petals"].max) == (df["petals"].min(), df["petals"].max())
    assert (cols["maybe"].min, cols["maybe"].max) == (np.nanmin(df["maybe"]), np.nanmax(df["maybe"]))
    assert (cols["count"].min, cols["count"].max) == (1.0, 59.0)
    assert cols["species"].categories == ["setosa", "versicolor"] and cols["site"].categories == ["north", "south"]
    assert cols["note"].categories is None  # 60 distinct values > 50: free text, not categories
    assert cols["wide"].categories is None and cols["wide"].min is None
    assert cols["seen"].min == "2024-01-01T00:00:00" and cols["seen"].max == "2024-02-29T00:00:00"
    assert cols["seen_utc"].min == "2024-01-01T00:00:00+00:00"


def test_infer_schema_of_an_array(cancer: Any) -> None:
    X, _ = cancer
    schema = infer_schema(X)
    assert schema.kind == "array" and schema.shape == [None, 30]
    assert [c.name for c in schema.columns] == [f"f{i}" for i in range(30)]
    assert all(c.dtype == "float" and not c.nullable for c in schema.columns)
    np.testing.assert_array_equal([c.min for c in schema.columns], X.min(axis=0))
    np.testing.assert_array_equal([c.max for c in schema.columns], X.max(axis=0))
    assert infer_schema(X.tolist()) == schema


def test_infer_schema_of_other_arrays() -> None:
    flat = infer_schema(np.array([1, 2, 3]))
    assert flat.shape == [None] and flat.columns[0].dtype == "int"
    labels = infer_schema(np.array([["a", "x"], ["b", "y"]], dtype=object))
    assert [c.categories for c in labels.columns] == [["a", "b"], ["x", "y"]]
    images = infer_schema(np.zeros((4, 8, 8), dtype=np.float32))
    assert images.shape == [None, 8, 8] and images.columns[0].shape == [None, 8, 8]
    with pytest.raises(InvalidInput):
        infer_schema([[1, 2], [3]])
    with pytest.raises(InvalidInput):
        infer_schema("not data")


def test_infer_output_schema(iris_frame: Any) -> None:
    X, y = iris_frame
    model = LogisticRegression(max_iter=1000).fit(X, y)
    out = infer_output_schema(model.predict(X))
    assert out.kind == "array" and out.shape == [None]
    assert [(c.name, c.dtype, c.min, c.max) for c in out.columns] == [("prediction", "int", 0.0, 2.0)]
    proba = infer_output_schema(model.predict_proba(X))
    assert proba.shape == [None, 3] and all(c.dtype == "float" for c in proba.columns)
    names = infer_output_schema(np.array(["setosa", "virginica"], dtype=object))
    assert names.columns[0].categories == ["setosa", "virginica"]


# ---------------------------------------------------------------- profile

def test_profile_matches_numpy(cancer: Any) -> None:
    X, y = cancer
    prof = profile(X, y)
    assert prof.rows == len(X) and len(prof.features) == X.shape[1]
    for j, fp in enumerate(prof.features):
        col = X[:, j]
        assert fp.name == f"f{j}" and fp.kind == "numeric"
        assert (fp.count, fp.nulls, fp.infinite) == (len(col), 0, 0)
        assert fp.mean == pytest.approx(np.mean(col), rel=1e-12)
        assert fp.std == pytest.approx(np.std(col), rel=1e-12)
        assert (fp.min, fp.max) == (col.min(), col.max())
        assert fp.quantiles is not None and list(fp.quantiles) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
        np.testing.assert_allclose(list(fp.quantiles.values()),
                                   np.quantile(col, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]), rtol=1e-12)
        counts, edges = np.histogram(col, bins=20)
        assert fp.histogram is not None
        np.testing.assert_allclose(fp.histogram.edges, edges, rtol=1e-12)
        assert fp.histogram.counts == counts.tolist()
    assert prof.label is not None and prof.label.kind == "categorical"
    assert prof.label.frequencies == {"1": int((y == 1).sum()), "0": int((y == 0).sum())}


def test_profile_of_nulls_infinities_and_categories() -> None:
    df = mixed_frame(150)
    df["spiky"] = [np.inf, -np.inf, np.nan] + list(np.arange(len(df) - 3, dtype=float))
    df["many"] = [f"v{i % 80}" for i in range(len(df) - 10)] + [None] * 10
    df["empty"] = np.nan
    prof = {f.name: f for f in profile(df).features}

    spiky = prof["spiky"]
    assert (spiky.count, spiky.nulls, spiky.infinite) == (len(df) - 1, 1, 2)
    finite = np.arange(len(df) - 3, dtype=float)
    assert spiky.mean == pytest.approx(finite.mean()) and spiky.max == finite.max()
    assert sum(spiky.histogram.counts) == len(finite)  # type: ignore[union-attr]

    maybe = prof["maybe"]
    assert maybe.nulls == int(df["maybe"].isna().sum())
    assert maybe.mean == pytest.approx(np.nanmean(df["maybe"]))

    empty = prof["empty"]
    assert (empty.count, empty.nulls, empty.mean, empty.histogram) == (0, len(df), None, None)

    many = prof["many"]
    assert many.kind == "categorical" and many.nulls == 10 and many.count == len(df) - 10
    assert many.frequencies is not None and len(many.frequencies) == 51 and "__other__" in many.frequencies
    assert sum(many.frequencies.values()) == many.count

    assert prof["wide"].kind == "categorical"
    assert prof["wide"].frequencies == {str(k): int(v) for k, v in df["wide"].value_counts().items()}
    assert prof["species"].frequencies == {"setosa": 50, "versicolor": 50, "virginica": 50}
    seen = prof["seen"]
    assert seen.kind == "numeric" and seen.min == pd.Timestamp("2024-01-01").timestamp()


def test_profile_checks_label_length(cancer: Any) -> None:
    X, y = cancer
    with pytest.raises(InvalidInput, match="rows"):
        profile(X, y[:10])


# ---------------------------------------------------------------- fingerprint

def test_fingerprint_is_stable() -> None:
    df = mixed_frame()
    fp = fingerprint(df)
    assert len(fp) == 64
    assert fingerprint(df.copy()) == fp
    assert fingerprint(df.set_index(df.index + 100)) == fp  # the row index is not data
    same = df.copy()
    same["seen"] = same["seen"].astype("datetime64[ns]")  # resolution is layout, not data
    same["site"] = same["site"].astype("string")  # object vs string dtype: the same text
    assert fingerprint(same) == fp
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    assert fingerprint(X) == fingerprint(np.ascontiguousarray(X)) == fingerprint(X.tolist())
    assert fingerprint(np.array([1.0, np.nan])) == fingerprint(np.array([1.0, -np.nan]))


def test_fingerprint_is_sensitive(cancer: Any) -> None:
    df = mixed_frame()
    fp = fingerprint(df)
    changed = df.copy()
    changed.loc[3, "sepal"] += 1e-9
    renamed = df.rename(columns={"site": "region"})
    retyped = df.assign(petals=df["petals"].astype("float64"))
    nulled = df.copy()
    nulled.loc[0, "site"] = None
    texted = df.assign(site=df["site"].replace({"north": "None"}))
    candidates = [changed, renamed, retyped, nulled, texted, df.iloc[::-1], df.iloc[:-1], df[df.columns[::-1]]]
    prints = [fingerprint(c) for c in candidates]
    assert fp not in prints and len(set(prints)) == len(prints)
    X, y = cancer
    assert fingerprint(X, y) != fingerprint(X) != fingerprint(X, 1 - y)
    assert fingerprint(X.astype(np.float32)) != fingerprint(X)


# ---------------------------------------------------------------- validation

def test_conforming_input_has_no_problems(cancer: Any) -> None:
    df = mixed_frame()
    contract = build_contract(df)
    assert validate_input(contract, df) == []
    assert validate_input(contract, df.iloc[:5]) == []
    assert validate_input(contract, df.iloc[:0]) == []
    records = df.iloc[:3].assign(seen=df["seen"].iloc[:3].astype(str)).drop(columns="seen_utc")
    problems = validate_input(contract, records.to_dict("records"))  # JSON-shaped rows, ISO timestamps
    assert problems == ["missing column(s): 'seen_utc'"]
    X, _ = cancer
    assert validate_input(build_contract(X), X[:10]) == []
    assert validate_input(build_contract(X), X[:10].tolist()) == []


def test_each_kind_of_violation_is_reported() -> None:
    df = mixed_frame()
    contract = build_contract(df)
    bad = df.drop(columns=["note"]).assign(extra=1)
    bad["sepal"] = bad["sepal"].astype(float)
    bad.loc[0, "sepal"] = -1.0  # below range
    bad.loc[1, "petals"] = 10_000  # above range
    bad["wide"] = "yes"  # wrong dtype
    bad["species"] = pd.Categorical(["setosa"] * (len(df) - 1) + ["dragon"])  # unknown category
    bad.loc[2, "site"] = None  # null in a never-null column
    bad["count"] = bad["count"].astype("float64").fillna(0.5)  # not an integer any more
    bad.loc[3, "seen"] = pd.Timestamp("1999-01-01")  # before the training range
    problems = validate_input(contract, bad)
    text = "\n".join(problems)
    expected = [
        "missing column(s): 'note'",
        "unexpected column(s): 'extra'",
        "column 'wide': expected bool, got string",
        "column 'species': 1 value(s) not seen in training (e.g. 'dragon')",
        "column 'site': 1 null value(s), but it had none in training",
        "column 'count': expected int, got non-integral values (e.g. 0.5)",
        "column 'seen': 1 timestamp(s) before the training minimum 2024-01-01T00:00:00",
        "column 'sepal': 1 value(s) below the training minimum",
        f"column 'petals': 1 value(s) above the training maximum {float(df['petals'].max())!r} (e.g. 10000.0)",
    ]
    for fragment in expected:
        assert fragment in text, (fragment, problems)
    assert len(problems) == len(expected)


def test_validation_of_arrays(cancer: Any) -> None:
    X, _ = cancer
    contract = build_contract(X)
    assert validate_input(contract, X[:, :5]) == ["expected 30 columns, got 5"]
    high = X[:3].copy()
    high[0, 2] = 1e6
    high[1, 0] = np.nan
    problems = validate_input(contract, high)
    assert any(p.startswith("column 'f2': 1 value(s) above") for p in problems)
    assert "column 'f0': 1 null value(s), but it had none in training" in problems
    assert validate_input(contract, pd.DataFrame(X[:3])) == []  # a frame is fine for an array model
    images = np.random.default_rng(0).random((4, 8, 8))
    tensor = build_contract(images)
    assert validate_input(tensor, images) == []
    assert validate_input(tensor, images[:, :4]) == ["expected an array of shape ('*', 8, 8), got (4, 4, 8)"]
    assert validate_input(tensor, images * 2)[0].startswith("values above the training maximum")


@pytest.mark.parametrize("garbage", [None, "hello", 42, [[1, 2], [3]], {"a": object()}])
def test_validation_never_raises(garbage: Any, cancer: Any) -> None:
    for contract in (build_contract(mixed_frame()), build_contract(cancer[0])):
        problems = validate_input(contract, garbage)
        assert problems and all(isinstance(p, str) for p in problems)


def test_contract_without_data_validates_nothing() -> None:
    contract = build_contract(metrics={"auc": 0.9})
    assert contract.inputs is None and contract.profile is None
    assert validate_input(contract, pd.DataFrame({"x": [1]})) == []


# ---------------------------------------------------------------- contract and JSON

def test_build_contract_with_a_model(iris_frame: Any) -> None:
    X, y = iris_frame
    model = LogisticRegression(max_iter=1000).fit(X, y)
    contract = build_contract(X, y, model=model, metrics={"accuracy": model.score(X, y)},
                              slices=["petal length (cm) > 4"])
    assert contract.inputs is not None and contract.inputs.kind == "dataframe"
    assert contract.outputs is not None and contract.outputs.columns[0].name == "prediction"
    assert contract.profile is not None and contract.profile.label is not None
    assert contract.profile.label.frequencies == {"0": 50, "1": 50, "2": 50}
    assert contract.data_fingerprint == fingerprint(X, y)
    assert contract.slices == ["petal length (cm) > 4"]

    class Broken:
        def predict(self, X: Any) -> Any:
            raise ValueError("boom")

    with pytest.raises(InvalidInput, match="boom"):
        build_contract(X, model=Broken())
    with pytest.raises(InvalidInput, match="metric"):
        build_contract(X, metrics={"auc": "high"})
    with pytest.raises(InvalidInput, match="slices"):
        build_contract(X, slices="all")  # type: ignore[arg-type]


def test_json_round_trip_keeps_nan_and_infinity() -> None:
    df = mixed_frame()
    df["spiky"] = [np.inf, -np.inf] + [1.0] * (len(df) - 2)
    df["empty"] = np.nan
    contract = build_contract(df, metrics={"loss": float("nan"), "gain": float("inf"), "auc": 0.5})
    text = contract.to_json()
    body = json.loads(text)  # strict JSON: no bare NaN tokens
    assert body["metrics"] == {"loss": "NaN", "gain": "Infinity", "auc": 0.5}
    back = Contract.from_json(text)
    assert math.isnan(back.metrics["loss"]) and back.metrics["gain"] == math.inf
    spiky = next(c for c in back.inputs.columns if c.name == "spiky")  # type: ignore[union-attr]
    assert (spiky.min, spiky.max) == (-math.inf, math.inf)
    assert back.to_json() == text
    assert back.inputs == contract.inputs and back.profile == contract.profile
    assert validate_input(back, df) == []
    assert Contract.model_validate_json(contract.model_dump_json()).to_json() == text
    assert Contract.model_validate(json.loads(text)).to_json() == text  # as the registry stores it: a dict


def test_contract_stays_small() -> None:
    rng = np.random.default_rng(0)
    numeric = pd.DataFrame(rng.normal(size=(5_000, 100)), columns=[f"x{i}" for i in range(100)])
    labels = np.array([f"category {k}" for k in range(200)], dtype=object)
    categorical = pd.DataFrame({f"c{i}": rng.choice(labels, 5_000) for i in range(100)})
    for df in (numeric, categorical):
        size = len(build_contract(df, y=rng.integers(0, 2, 5_000)).to_json())
        assert size < 150_000, size


def test_a_column_of_lists_has_no_category_set() -> None:
    """Unhashable values (lists, as in an evaluation set's relevant ids) used to raise a TypeError deep in
    pandas; such a column simply has no categories."""
    schema = infer_schema(pd.DataFrame({"q": ["a", "b"], "ids": [["x"], ["y", "z"]]}))
    ids = next(c for c in schema.columns if c.name == "ids")
    assert ids.categories is None
    assert next(c for c in schema.columns if c.name == "q").categories == ["a", "b"]
