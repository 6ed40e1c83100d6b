"""monitoring.drift and reference profiles: method choice, exactness, merging, bad input."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from arsenale import InvalidInput, monitoring
from arsenale.monitoring import ReferenceProfile, reference_profile
from arsenale.monitoring.drift import ColumnDrift
from arsenale.monitoring.sketch import _dyadic_parse
from arsenale.registry import contract


def frames(n: int, m: int | None = None, *, seed: int = 0, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    m = n if m is None else m

    def one(k: int, s: float) -> pd.DataFrame:
        return pd.DataFrame({
            "age": rng.normal(40 + 10 * s, 10, k),
            "income": rng.lognormal(10, 0.5, k),
            "city": rng.choice(["rome", "oslo", "lima"], k, p=[0.5, 0.3, 0.2] if not s else [0.2, 0.3, 0.5]),
            "member": rng.choice(["yes", "no"], k),
            "kids": rng.choice([0.0, 1.0, 2.0], k),
        })
    return one(n, 0.0), one(m, shift)


# ---------------------------------------------------------------- method choice and exactness

def test_small_reference_uses_tests_with_scipy_values() -> None:
    ref, cur = frames(500, 400, shift=1.0)
    report = monitoring.drift(ref, cur)
    cols = report.columns
    assert {n: c.method for n, c in cols.items()} == {
        "age": "ks", "income": "ks", "city": "chisquare", "member": "z", "kids": "chisquare"}
    ks = stats.ks_2samp(ref["age"], cur["age"])
    assert (cols["age"].statistic, cols["age"].p_value) == (ks.statistic, ks.pvalue)
    assert cols["age"].drifted and cols["age"].threshold == 0.05
    table = pd.crosstab(np.r_[np.zeros(500), np.ones(400)], np.r_[ref["city"], cur["city"]]).to_numpy()
    chi = stats.chi2_contingency(table, correction=False)
    assert cols["city"].p_value == pytest.approx(chi.pvalue, rel=1e-9) and cols["city"].drifted
    assert not cols["income"].drifted and not cols["member"].drifted


def test_large_reference_uses_distances_equal_to_scipy() -> None:
    ref, cur = frames(3000, 2500, seed=1, shift=1.0)
    report = monitoring.drift(ref, cur)
    age, city, kids = report.columns["age"], report.columns["city"], report.columns["kids"]
    assert (age.method, city.method, kids.method) == ("wasserstein", "jensenshannon", "jensenshannon")
    expected = stats.wasserstein_distance(ref["age"], cur["age"]) / np.std(ref["age"])
    assert age.statistic == pytest.approx(expected, rel=1e-9) and age.drifted and age.p_value is None
    p = ref["city"].value_counts().sort_index()
    q = cur["city"].value_counts().sort_index()
    assert city.statistic == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()), abs=1e-12)
    assert city.drifted and not kids.drifted and not report.columns["income"].drifted
    assert report.number_of_drifted_columns == 2 and report.drift_share == pytest.approx(2 / 5)
    assert not report.dataset_drift and report.drift_share_threshold == 0.5


def test_overrides_of_method_threshold_and_share() -> None:
    ref, cur = frames(3000, seed=2, shift=1.0)
    report = monitoring.drift(ref, cur, method={"age": "psi", "kids": "hellinger"}, threshold={"age": 50.0},
                              drift_share=0.4)
    age = report.columns["age"]
    assert (age.method, age.threshold, age.drifted) == ("psi", 50.0, False)
    assert "binned at the reference deciles" in age.notes
    assert report.columns["kids"].method == "hellinger"
    assert report.columns["income"].method == "wasserstein"
    assert report.drift_share == pytest.approx(1 / 5) and not report.dataset_drift
    everywhere = monitoring.drift(ref, cur, method="ks", threshold=0.01, drift_share=0.2)
    assert everywhere.columns["age"].method == "ks" and everywhere.columns["age"].threshold == 0.01
    assert everywhere.columns["city"].method == "jensenshannon"  # ks needs numbers: default, with a note
    assert any("ks does not apply" in n for n in everywhere.columns["city"].notes)
    assert everywhere.dataset_drift
    with pytest.raises(InvalidInput) as e:
        monitoring.drift(ref, cur, method={"city": "ks"})
    assert e.value.field == "method.city"


def test_prediction_is_reported_apart() -> None:
    ref, cur = frames(2000, seed=3)
    ref["pred"], cur["pred"] = np.zeros(2000), np.r_[np.zeros(1000), np.ones(1000)]
    report = monitoring.drift(ref, cur, prediction="pred")
    assert "pred" not in report.columns and report.prediction is not None
    assert report.prediction.drifted and report.number_of_columns == 5
    with pytest.raises(InvalidInput) as e:
        monitoring.drift(ref, cur, prediction="nope")
    assert e.value.field == "prediction"


def test_arrow_tables_give_the_same_report() -> None:
    ref, cur = frames(1500, seed=4, shift=0.5)
    from_pandas = monitoring.drift(ref, cur)
    from_arrow = monitoring.drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
    assert from_arrow.to_dict() == from_pandas.to_dict()
    dicts = pa.Table.from_pandas(ref.astype({"city": "category"}))
    assert monitoring.drift(dicts, cur).columns["city"].statistic == from_pandas.columns["city"].statistic


def test_parquet_paths_are_read_column_by_column_with_the_same_answer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref, cur = frames(2500, seed=9, shift=0.5)
    ref["when"] = pd.date_range("2024-01-01", periods=2500, freq="h")
    cur["when"] = pd.date_range("2024-03-01", periods=2500, freq="h")
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    from_files = monitoring.drift(tmp_path / "ref.parquet", str(tmp_path / "cur.parquet"))
    assert from_files.to_dict() == monitoring.drift(ref, cur).to_dict()
    assert from_files.columns["when"].kind == "numeric" and from_files.columns["when"].drifted
    assert reference_profile(tmp_path / "ref.parquet") == reference_profile(ref)
    with pytest.raises(InvalidInput) as e:
        monitoring.drift(tmp_path / "missing.parquet", cur)
    assert e.value.field == "reference"


def test_same_input_gives_bit_identical_json_also_in_parallel() -> None:
    ref, cur = frames(60_000, seed=5, shift=0.3)
    first = monitoring.drift(ref, cur).to_json()
    assert monitoring.drift(ref, cur).to_json() == first
    prof = reference_profile(ref)
    assert reference_profile(ref.iloc[::-1]).to_json() == prof.to_json()  # row order does not matter
    assert monitoring.drift(prof, cur).to_json() == monitoring.drift(prof, cur).to_json()


# ---------------------------------------------------------------- reference profiles

def test_profile_of_a_small_reference_is_exact() -> None:
    ref, cur = frames(800, 700, seed=6, shift=0.4)
    prof = ReferenceProfile.from_json(reference_profile(ref).to_json())
    for method in (None, "anderson", "wasserstein", "psi"):
        a = monitoring.drift(ref, cur, method=method).to_dict()
        b = monitoring.drift(prof, cur, method=method).to_dict()
        assert a["columns"] == b["columns"]


def test_profile_of_a_large_reference_bins_with_a_bound() -> None:
    ref, cur = frames(20_000, seed=7, shift=0.2)
    prof = reference_profile(ref)
    exact, binned = monitoring.drift(ref, cur), monitoring.drift(prof, cur)
    for name in ("age", "income"):
        e, b = exact.columns[name], binned.columns[name]
        assert b.approximate and b.error_bound is not None and b.error_bound < 0.02
        assert abs(e.statistic - b.statistic) <= b.error_bound  # type: ignore[operator]
        assert e.drifted == b.drifted
    for name in ("city", "member", "kids"):  # categories and discrete columns are exact
        assert exact.columns[name].statistic == binned.columns[name].statistic
    assert monitoring.drift(ref, cur, method="psi").columns["age"].statistic == \
        monitoring.drift(prof, cur, method="psi").columns["age"].statistic
    ks = monitoring.drift(prof, cur, method={"age": "ks"}).columns["age"]
    exact_d = stats.ks_2samp(ref["age"], cur["age"]).statistic
    assert ks.approximate and ks.statistic <= exact_d + 1e-12 and exact_d - ks.statistic <= ks.error_bound
    with pytest.raises(InvalidInput):
        monitoring.drift(prof, cur, method={"age": "anderson"})


def test_profile_moments_are_exact() -> None:
    x = np.array([1e-300, -2.5, 3.0, 1e200, -1e200, 7e-320, 0.1, 0.1, 1e150])
    sk = monitoring.reference_profile(pd.DataFrame({"x": x})).columns["x"]
    assert isinstance(sk, monitoring.NumericSketch)
    exact = [Fraction(float(v)) for v in x]
    assert _dyadic_parse(sk.sum) == sum(exact)
    assert _dyadic_parse(sk.sum_squares) == sum(v * v for v in exact)
    small = np.random.default_rng(0).normal(5, 3, 1000)
    s2 = monitoring.reference_profile(pd.DataFrame({"x": small})).columns["x"]
    assert s2.mean == pytest.approx(small.mean(), rel=1e-14) and s2.std == pytest.approx(small.std(), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 3000), st.integers(0, 2 ** 32 - 1), st.floats(1e-3, 1e6))
def test_profiles_of_parts_merge_into_the_profile_of_the_whole(cut: int, n: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, scale, n)
    x[rng.random(n) < 0.05] = np.nan
    df = pd.DataFrame({"x": x, "few": rng.choice([1.0, 2.0, 3.0], n),
                       "cat": rng.choice(["a", "b", "c", "d"], n), "dup": np.round(x, 1)})
    cut = min(cut, n)
    whole = reference_profile(df)
    merged = reference_profile(df.iloc[:cut]).merge(reference_profile(df.iloc[cut:]))
    assert merged == whole
    assert merged.to_json() == whole.to_json()


def test_profiles_must_match_to_merge() -> None:
    a = reference_profile(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(InvalidInput):
        a.merge(reference_profile(pd.DataFrame({"y": [1.0]})))
    with pytest.raises(InvalidInput):
        a.merge(reference_profile(pd.DataFrame({"x": ["a"]})))


# ---------------------------------------------------------------- the model contract's profile

@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).data


def test_contract_profile_without_and_with_a_shift(cancer: pd.DataFrame) -> None:
    prof = contract.profile(cancer)
    same = monitoring.drift(prof, cancer)
    assert same.reference == "contract" and same.number_of_columns == 30
    assert same.number_of_drifted_columns == 0 and not same.dataset_drift
    assert all(c.method == "ks" and c.approximate for c in same.columns.values())
    shifted = cancer.copy()
    moved = list(cancer.columns[:20])
    shifted[moved] = shifted[moved] + shifted[moved].std()
    report = monitoring.drift(prof, shifted)
    assert {n for n, c in report.columns.items() if c.drifted} == set(moved)
    assert report.dataset_drift and report.drift_share == pytest.approx(20 / 30)
    big = monitoring.drift(prof, shifted, method="wasserstein")
    assert all(big.columns[n].drifted for n in moved)
    whole = contract.build_contract(cancer)
    assert monitoring.drift(whole, shifted).to_dict() == report.to_dict()


def test_contract_profile_categories_and_label(cancer: pd.DataFrame) -> None:
    df = pd.DataFrame({"colour": np.repeat(["red", "blue"], [300, 269]), "x": cancer["mean radius"]})
    y = pd.Series(np.r_[np.zeros(300), np.ones(269)].astype(int), name="target")
    prof = contract.profile(df, y)
    cur = df.assign(pred=np.ones(569, dtype=int))
    report = monitoring.drift(prof, cur, prediction="pred")
    assert report.columns["colour"].method == "z" and not report.columns["colour"].drifted
    assert report.prediction is not None and report.prediction.drifted
    assert any("training label" in n for n in report.prediction.notes)


# ---------------------------------------------------------------- bad input

def test_bad_columns_get_a_status_not_a_crash() -> None:
    n = 1200
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"ok": rng.normal(size=n), "null": np.full(n, np.nan), "const": np.ones(n),
                        "gone": rng.normal(size=n), "inf": rng.normal(size=n), "text": rng.choice(["a", "b"], n),
                        "typed": rng.normal(size=n)})
    cur = ref.drop(columns=["gone"]).assign(
        const=np.full(n, 2.0), text=rng.choice(["a", "b", "zzz"], n), typed=rng.choice(["x", "y"], n))
    cur.loc[:99, "inf"] = np.inf
    report = monitoring.drift(ref, cur)
    cols = report.columns
    assert cols["null"].status == "skipped" and "reference has no values" in (cols["null"].reason or "")
    assert cols["gone"].status == "skipped" and cols["gone"].reason == "missing from the current data"
    assert cols["typed"].status == "skipped" and "numeric in the reference" in (cols["typed"].reason or "")
    assert cols["const"].method == "jensenshannon" and cols["const"].drifted  # one value: a discrete column
    normed = monitoring.drift(ref, cur, method={"const": "wasserstein"}).columns["const"]
    assert normed.statistic == pytest.approx(1 / 0.001) and any("std" in note for note in normed.notes)
    assert cols["inf"].current_count == n - 100 and any("infinite" in note for note in cols["inf"].notes)
    assert any("never seen" in note for note in cols["text"].notes) and cols["text"].drifted
    assert report.number_of_skipped_columns == 3 and report.number_of_columns == 4
    json.loads(report.to_json())

    empty = monitoring.drift(ref, ref.iloc[:0])
    assert empty.number_of_columns == 0 and not empty.dataset_drift and empty.drift_share == 0.0
    assert all(c.status == "skipped" and not c.drifted for c in empty.columns.values())
    constant = monitoring.drift(ref[["const"]], ref[["const"]]).columns["const"]
    assert constant.statistic == 0.0 and not constant.drifted
    all_inf = monitoring.drift(ref[["ok"]], pd.DataFrame({"ok": [np.inf, -np.inf]})).columns["ok"]
    assert all_inf.status == "skipped" and "2 infinite" in (all_inf.reason or "")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"reference": [1, 2, 3]}, "reference"),
    ({"current": {"a": [1]}}, "current"),
    ({"method": "magic"}, "method"),
    ({"method": {"nope": "ks"}}, "method"),
    ({"threshold": -1}, "threshold"),
    ({"threshold": {"age": float("nan")}}, "threshold.age"),
    ({"drift_share": 1.5}, "drift_share"),
    ({"columns": ["nope"]}, "columns"),
])
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    ref, cur = frames(50)
    args = {"reference": ref, "current": cur, **kwargs}
    with pytest.raises(InvalidInput) as e:
        monitoring.drift(args.pop("reference"), args.pop("current"), **args)
    assert e.value.field == field


def test_duplicate_columns_are_refused() -> None:
    df = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    with pytest.raises(InvalidInput) as e:
        monitoring.drift(df, df)
    assert e.value.field == "reference"


def test_report_json_keeps_nan_as_text() -> None:
    col = ColumnDrift(name="x", kind="numeric", statistic=float("nan"), p_value=float("inf"))
    assert col.model_dump_json().count('"NaN"') == 1
    report = monitoring.drift(*frames(30))
    assert report.to_dict()["columns"]["age"]["method"] == "ks"
