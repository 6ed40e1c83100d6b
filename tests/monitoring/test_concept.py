"""monitoring.concept: change detection on error streams, windowed performance from the log, CBPE."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from arsenale.errors import InvalidInput
from arsenale.monitoring.concept import (
    ChangeReport,
    detect_changes,
    estimate_performance,
    estimate_vs_reference,
    performance_by_window,
)

CHANGE_AT = 3000
MAX_DELAY = 400  # rows after the jump within which ADWIN and Page-Hinkley must fire


def jump_stream(seed: int, before: float = 0.05, after: float = 0.30, n: int = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(CHANGE_AT) < before, rng.random(n - CHANGE_AT) < after])


# ---------------------------------------------------------------- detect_changes

@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jump_detected_within_bounded_delay(detector: str, seed: int) -> None:
    report = detect_changes(jump_stream(seed), detector=detector)
    assert report.drifted
    assert all(i >= CHANGE_AT for i in report.indices), "no detection before the jump"
    assert report.indices[0] - CHANGE_AT <= MAX_DELAY


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_no_change_on_a_stationary_stream(detector: str) -> None:
    stream = np.random.default_rng(11).random(20_000) < 0.05
    report = detect_changes(stream, detector=detector)
    assert not report.drifted and report.changes == [] and report.indices == []
    assert report.rows == 20_000


def test_report_fields_and_rates() -> None:
    stream = jump_stream(3)
    report = detect_changes(stream, detector="adwin", delta=0.001)
    assert report.detector == "adwin"
    assert report.params["delta"] == 0.001 and report.params["clock"] == 32  # defaults included
    assert report.rows == len(stream) and report.error_rate == pytest.approx(stream.mean())
    first = report.changes[0]
    assert first.rows_before == first.index + 1
    assert first.error_rate_before == pytest.approx(stream[: first.index + 1].mean())
    end = report.changes[1].index if len(report.changes) > 1 else len(stream) - 1
    assert first.rows_after == end - first.index
    assert first.error_rate_after == pytest.approx(stream[first.index + 1: end + 1].mean())
    assert first.error_rate_before < 0.1
    assert first.error_rate_after is not None and first.error_rate_after > 0.25
    assert sum(c.rows_before for c in report.changes) + report.changes[-1].rows_after == len(stream)
    body = json.loads(report.to_json())
    assert body == report.to_dict() and set(body) == {"detector", "params", "rows", "error_rate", "changes"}
    assert ChangeReport.model_validate(body) == report


def test_deterministic_and_accepts_lists_bools_and_losses() -> None:
    stream = jump_stream(4)
    a = detect_changes(stream.tolist(), detector="page_hinkley")
    b = detect_changes(stream.astype(float), detector="page_hinkley")
    assert a == b
    rng = np.random.default_rng(5)
    losses = np.concatenate([rng.exponential(0.2, 2000), rng.exponential(1.0, 2000)])
    report = detect_changes(losses, detector="page_hinkley", threshold=20.0, mode="up")
    assert report.drifted and 2000 <= report.indices[0] < 2400


def test_ddm_takes_zero_one_errors() -> None:
    report = detect_changes(jump_stream(0).astype(int), detector="ddm")
    assert any(CHANGE_AT <= i <= CHANGE_AT + MAX_DELAY for i in report.indices)
    assert report.params == {"warm_start": 30, "warning_threshold": 2.0, "drift_threshold": 3.0}
    with pytest.raises(InvalidInput) as e:
        detect_changes([0.0, 0.5, 1.0], detector="ddm")
    assert e.value.field == "errors"


def test_change_on_the_last_row_has_no_after_segment() -> None:
    stream = np.zeros(200)
    stream[-1] = 1.0
    report = detect_changes(stream, detector="page_hinkley", threshold=0.5, min_instances=1, delta=0.0)
    last = report.changes[-1]
    assert last.index == 199 and last.rows_after == 0 and last.error_rate_after is None


@pytest.mark.parametrize(("errors", "kwargs", "field"), [
    ([], {}, "errors"),
    (np.array([]), {"detector": "page_hinkley"}, "errors"),
    ([0, 1], {"detector": "kswin"}, "detector"),
    ([0, 1], {"detector": "adwin", "treshold": 3}, "treshold"),
    ([0, 1], {"detector": "adwin", "delta": 2.0}, "delta"),
    ([0, 1], {"detector": "page_hinkley", "threshold": -1}, "threshold"),
    ([0, 1], {"detector": "page_hinkley", "mode": "sideways"}, "mode"),
    ([0, 1], {"detector": "ddm", "warm_start": 2.5}, "warm_start"),
    ([0, float("nan")], {}, "errors"),
    (["wrong", "right"], {}, "errors"),
    ([[0, 1], [1, 0]], {}, "errors"),
])
def test_detect_changes_bad_input(errors: object, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        detect_changes(errors, **kwargs)  # type: ignore[arg-type]
    assert e.value.field == field
    assert field in str(e.value) or field in ("errors", "detector")


# ---------------------------------------------------------------- performance_by_window

H = 3_600_000
T0 = 1_700_000_000_000 // H * H  # on the hour


def small_log() -> pd.DataFrame:
    """Two hours, two versions, two countries, some labels still missing."""
    rows = [
        # minute, version, country, prediction, label
        (1, 1, "it", 1, 1), (2, 1, "it", 0, 1), (3, 1, "fr", 1, 0), (4, 1, "fr", 0, 0),
        (5, 2, "it", 1, 1), (6, 2, "it", 1, np.nan), (7, 2, "fr", 0, 0), (8, 1, "it", 1, np.nan),
        (61, 1, "it", 1, 1), (62, 1, "fr", 0, 1), (63, 2, "fr", 1, 1), (64, 2, "it", 0, 0),
        (65, 1, "it", 0, np.nan), (66, 2, "fr", 0, 1), (67, 1, "fr", 1, 1),
    ]
    df = pd.DataFrame(rows, columns=["minute", "version", "country", "prediction", "label"])
    df["timestamp_ms"] = T0 + df["minute"] * 60_000
    df["model"] = "churn"
    df["age"] = np.arange(len(df)) * 3.0
    return df.drop(columns="minute")


def sk(frame: pd.DataFrame) -> dict[str, float]:
    y, p = frame["label"].astype(int), frame["prediction"].astype(int)
    kw = {"zero_division": np.nan}
    return {"accuracy": metrics.accuracy_score(y, p), "precision": metrics.precision_score(y, p, **kw),
            "recall": metrics.recall_score(y, p, **kw), "f1": metrics.f1_score(y, p, **kw), "labelled": len(frame)}


def check(row: pd.Series, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, nan_ok=True), key


def test_time_windows_by_version_against_sklearn() -> None:
    log = small_log()
    out = performance_by_window(log, window="1h")
    assert list(out.columns) == ["window_start", "window_end", "model", "version", "labelled",
                                 "accuracy", "precision", "recall", "f1"]
    labelled = log[log["label"].notna()]
    assert len(out) == 4 and out["labelled"].sum() == len(labelled)
    for _, row in out.iterrows():
        start = int(row["window_start"].timestamp() * 1000)
        assert row["window_end"] - row["window_start"] == pd.Timedelta("1h") and start % H == 0
        part = labelled[(labelled["timestamp_ms"] >= start) & (labelled["timestamp_ms"] < start + H)
                        & (labelled["version"] == row["version"])]
        check(row, sk(part))


def test_slices_and_a_window_without_version() -> None:
    log = small_log()
    out = performance_by_window(log, window="2h", slices=["country"], by_version=False)
    assert list(out.columns[:3]) == ["window_start", "window_end", "country"] and len(out) == 2
    labelled = log[log["label"].notna()]
    for _, row in out.iterrows():
        check(row, sk(labelled[labelled["country"] == row["country"]]))


def test_row_windows() -> None:
    log = small_log().sample(frac=1.0, random_state=0)  # shuffled: windows follow time, not frame order
    out = performance_by_window(log, rows=4, by_version=False)
    labelled = log[log["label"].notna()].sort_values("timestamp_ms")
    assert list(out["window"]) == [0, 1, 2] and list(out["labelled"]) == [4, 4, 4]
    for k, row in out.iterrows():
        part = labelled.iloc[4 * k: 4 * k + 4]
        check(row, sk(part))
        assert row["window_start"] == pd.Timestamp(part["timestamp_ms"].min(), unit="ms", tz="UTC")
        assert row["window_end"] == pd.Timestamp(part["timestamp_ms"].max(), unit="ms", tz="UTC")
    by_version = performance_by_window(log, rows=5)
    assert by_version.groupby("window")["labelled"].sum().tolist() == [5, 5, 2]


def test_unlabelled_rows_are_ignored_and_string_labels() -> None:
    log = small_log()
    only_labelled = performance_by_window(log[log["label"].notna()], window="1h")
    pd.testing.assert_frame_equal(performance_by_window(log, window="1h"), only_labelled)
    words = log.assign(prediction=log["prediction"].map({1: "churn", 0: "stay"}),
                       label=log["label"].map({1: "churn", 0: "stay"}))
    out = performance_by_window(words, window="1h", pos_label="churn")
    pd.testing.assert_frame_equal(out, only_labelled)
    nothing = performance_by_window(log.assign(label=np.nan), window="1h")
    assert nothing.empty and "accuracy" in nothing.columns


def test_zero_division_is_nan_like_sklearn() -> None:
    log = small_log()
    log["prediction"] = 0  # nothing predicted positive: precision undefined
    out = performance_by_window(log, window="1d", by_version=False)
    labelled = log[log["label"].notna()]
    check(out.iloc[0], sk(labelled))
    assert np.isnan(out.iloc[0]["precision"]) and out.iloc[0]["recall"] == 0.0


@pytest.mark.parametrize(("mutate", "kwargs", "field"), [
    (lambda d: d.drop(columns="label"), {}, "label"),
    (lambda d: d.drop(columns="prediction"), {}, "prediction"),
    (lambda d: d.drop(columns="timestamp_ms"), {}, "timestamp_ms"),
    (lambda d: d, {"slices": ["region"]}, "slices"),
    (lambda d: d, {"window": "1 fortnight"}, "window"),
    (lambda d: d, {"window": "-1h"}, "window"),
    (lambda d: d, {"rows": 0}, "rows"),
    (lambda d: d, {"rows": 10, "window": "1h"}, "rows"),
    (lambda d: d, {"pos_label": "yes"}, "pos_label"),
    (lambda d: d.assign(label=d["label"].replace(0, 2)), {}, "label"),
    (lambda d: d.to_dict("records"), {}, "log"),
])
def test_performance_by_window_bad_input(mutate, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        performance_by_window(mutate(small_log()), **kwargs)
    assert e.value.field == field


# ---------------------------------------------------------------- estimate_performance (CBPE)

def calibrated(seed: int, n: int = 20_000, a: float = 0.6, b: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, n)
    return p, (rng.random(n) < p).astype(int)  # labels drawn from the probabilities: calibrated by construction


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cbpe_close_to_actual_on_calibrated_probabilities(seed: int) -> None:
    p, y = calibrated(seed)
    pred = (p >= 0.5).astype(int)
    est = estimate_performance(p)
    assert abs(est["accuracy"] - metrics.accuracy_score(y, pred)) < 0.02
    assert abs(est["precision"] - metrics.precision_score(y, pred)) < 0.02  # type: ignore[operator]
    assert abs(est["recall"] - metrics.recall_score(y, pred)) < 0.02  # type: ignore[operator]
    assert abs(est["f1"] - metrics.f1_score(y, pred)) < 0.02  # type: ignore[operator]
    assert est["accuracy"] == pytest.approx(np.maximum(p, 1 - p).mean())
    assert 0 < est["accuracy_std"] < 0.005
    cm = est["confusion_matrix"]
    assert sum(cm.values()) == pytest.approx(len(p)) and est["rows"] == len(p)
    assert est["expected_positive_rate"] == pytest.approx(p.mean())


def test_cbpe_threshold_and_predict_proba_columns() -> None:
    p, y = calibrated(7)
    est = estimate_performance(np.column_stack([1 - p, p]), threshold=0.3)
    pred = (p >= 0.3).astype(int)
    assert abs(est["accuracy"] - metrics.accuracy_score(y, pred)) < 0.02
    assert est["predicted_positive_rate"] == pytest.approx(pred.mean()) and est["threshold"] == 0.3
    none_positive = estimate_performance([0.1, 0.2], threshold=0.9)
    assert none_positive["precision"] is None and none_positive["recall"] == 0.0


def test_estimate_vs_reference_reports_the_drop() -> None:
    reference, _ = calibrated(0, a=0.3, b=0.3)   # confident
    current, _ = calibrated(1, a=2.0, b=2.0)     # hesitant: expected to be right less often
    out = estimate_vs_reference(reference, current)
    assert out["drop"]["accuracy"] == pytest.approx(out["reference"]["accuracy"] - out["current"]["accuracy"])
    assert out["drop"]["accuracy"] > 0.1
    assert set(out["drop"]) == {"accuracy", "precision", "recall", "f1"}
    same = estimate_vs_reference(reference, reference)
    assert all(v == 0 for v in same["drop"].values())
    json.dumps(out)  # plain JSON types


@pytest.mark.parametrize(("call", "field"), [
    (lambda: estimate_performance([]), "probabilities"),
    (lambda: estimate_performance([0.2, 1.2]), "probabilities"),
    (lambda: estimate_performance([-0.1, 0.5]), "probabilities"),
    (lambda: estimate_performance([0.2, float("nan")]), "probabilities"),
    (lambda: estimate_performance(np.ones((3, 3)) / 3), "probabilities"),
    (lambda: estimate_performance([0.2, 0.4], threshold=1.5), "threshold"),
    (lambda: estimate_vs_reference([0.2, 2.0], [0.3]), "reference_probabilities"),
    (lambda: estimate_vs_reference([0.2], []), "current_probabilities"),
])
def test_estimate_bad_input(call, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        call()
    assert e.value.field == field and field.split("_")[-1] in str(e.value)
