"""The inference log: every sampled row comes back, labels join late or early, nothing half-written shows."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from arsenale.errors import BackendUnavailable, InvalidInput
from arsenale.serving import inference_log as il
from arsenale.serving.inference_log import InferenceLog, online_accuracy, read_log, sampled

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".parquet")


def test_rows_from_8_threads_read_back_exactly_the_sampled_ones(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), "fraud", sample_rate=0.5, flush_rows=500, flush_seconds=0.05,
                       replica="r1")
    expected: dict[tuple[str, int], tuple[str, float]] = {}  # (request, row) -> (role, feature value)
    lock = threading.Lock()
    calls: list[int] = []
    per_thread = 2_500  # rows: 8 threads x 2,500 = 20,000

    def work(worker: int) -> None:
        rng = random.Random(worker)
        rows, seq, mine = 0, 0, {}
        while rows < per_thread:
            n = min(rng.randint(1, 3), per_thread - rows)
            rid = f"w{worker}-{seq}"
            seq += 1
            inputs = [{"amount": float(rows + i), "country": rng.choice("ab"), "worker": worker}
                      for i in range(n)]
            role = "route" if seq % 4 else "shadow"  # every fourth request is mirrored to a shadow
            log.log(request_id=rid, model="fraud", version=1 if role == "route" else 2, role=role,
                    inputs=inputs, outputs=[i % 2 for i in range(n)], latency_ms=1.5, timestamp_ms=T0 + seq)
            if sampled(rid, 0.5):
                mine.update({(f"{rid}/{role}", i): (role, inputs[i]["amount"]) for i in range(n)})
            rows += n
        with lock:
            expected.update(mine)
            calls.append(seq)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start  # includes building the inputs and the writer's share of the GIL
    log.close()
    assert log.dropped == 0 and log.pending == 0

    frame = read_log(str(tmp_path), "fraud", role=None)
    got = {(f"{r.request_id}/{r.role}", r.row): (r.role, r.amount) for r in frame.itertuples()}
    assert len(frame) == len(got) == len(expected)
    assert got == expected
    assert 0.45 < len({k[0] for k in expected}) / sum(calls) < 0.55  # about half of ~10,000 requests
    routes = read_log(str(tmp_path), "fraud")
    assert set(routes["role"]) == {"route"} and len(routes) == sum(r == "route" for r, _ in expected.values())
    assert list(frame["timestamp_ms"]) == sorted(frame["timestamp_ms"])
    assert len(_parquet_files(tmp_path)) > 1
    mean_us = 1e6 * elapsed / sum(calls)
    print(f"\nInferenceLog.log: {mean_us:.1f} µs of wall time per call, inputs included (8 threads)")
    assert mean_us < 500  # generous: two shared cores


def test_log_is_fast_on_one_thread(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), "fast", flush_rows=5_000, flush_seconds=0.5)
    row = [{f"f{i}": float(i) for i in range(20)}]
    n = 20_000
    start = time.perf_counter()
    for i in range(n):
        log.log(request_id=f"r{i}", model="m", version=1, role="route", inputs=row, outputs=[1],
                latency_ms=2.0, timestamp_ms=T0 + i)
    mean_us = 1e6 * (time.perf_counter() - start) / n
    log.close()
    print(f"\nInferenceLog.log: {mean_us:.1f} µs per call (one thread, 20 features)")
    assert mean_us < 200
    assert len(read_log(str(tmp_path), "fast")) == n


def test_sampling_is_deterministic_and_keeps_a_request_whole() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    kept = [i for i in ids if sampled(i, 0.1)]
    assert 0.08 < len(kept) / len(ids) < 0.12
    assert kept == [i for i in ids if sampled(i, 0.1)]
    assert set(kept) <= {i for i in ids if sampled(i, 0.3)}  # a higher rate keeps a superset
    assert all(sampled(i, 1.0) for i in ids[:100]) and not any(sampled(i, 0.0) for i in ids[:100])


def test_feedback_joins_by_request_whenever_it_arrives(tmp_path: Path) -> None:
    root = str(tmp_path)
    log = InferenceLog(root, "churn", flush_seconds=60, replica="r1")
    log.feedback("early", 1, T0 + 5)  # the label is written before its request
    log.flush()
    for rid, pred in (("early", 1), ("late", 0), ("none", 1), ("batch", 1)):
        rows = 2 if rid == "batch" else 1
        log.log(request_id=rid, model="churn", version=3, role="route", inputs=[{"x": 1.0}] * rows,
                outputs=[{"prediction": pred, "probabilities": [0.3, 0.7]}] * rows, latency_ms=1,
                timestamp_ms=T0)
    log.flush()
    log.feedback("late", 1, T0 + 10)
    log.feedback("late", 0, T0 + 20)  # the latest label wins
    log.feedback("batch", [1, 0], T0 + 10)  # one label per row
    log.close()

    frame = read_log(root, "churn").set_index(["request_id", "row"])
    assert frame.loc[("early", 0), "label"] == 1
    assert frame.loc[("late", 0), "label"] == 0
    assert math.isnan(frame.loc[("none", 0), "label"])
    assert frame.loc[("batch", 0), "label"] == 1 and frame.loc[("batch", 1), "label"] == 0
    assert frame["prediction"].tolist() == [1, 0, 1, 1, 1]
    assert online_accuracy(root, "churn") == {"churn/3": {"labelled": 4, "correct": 3, "accuracy": 0.75}}


def test_feedback_is_kept_for_requests_sampling_left_out(tmp_path: Path) -> None:
    out = next(f"r{i}" for i in range(1000) if not sampled(f"r{i}", 0.2))
    log = InferenceLog(str(tmp_path), "d", sample_rate=0.2, replica="r1")
    log.log(request_id=out, model="m", version=1, role="route", inputs=[{"x": 1}], outputs=[1], latency_ms=1,
            timestamp_ms=T0)
    log.feedback(out, "spam", T0 + 1)
    log.close()
    assert read_log(str(tmp_path), "d").empty
    labels = ds.dataset(str(tmp_path / "d" / "feedback"), format="parquet").to_table().to_pylist()
    assert labels == [{"request_id": out, "row": -1, "label": "spam", "timestamp_ms": T0 + 1}]


def test_inputs_whose_columns_vary_read_back_as_one_table(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), "d", replica="r1")
    batches = [[{"a": 1, "b": "x"}], [{"a": 2.5, "c": True}], [{"a": 3, "tags": ["p", "q"], "role": "admin"}]]
    for i, inputs in enumerate(batches):
        log.log(request_id=f"q{i}", model="m", version=1, role="route", inputs=inputs, outputs=["yes"],
                latency_ms=1, timestamp_ms=T0 + i)
        log.flush()  # one file per request: three different schemas
    log.close()
    frame = read_log(str(tmp_path), "d")
    assert frame["a"].tolist() == [1.0, 2.5, 3.0]
    assert frame["b"].tolist()[0] == "x" and frame["b"].isna().tolist() == [False, True, True]
    assert frame["tags"].tolist()[2] == '["p", "q"]'  # lists are kept as JSON text
    assert frame["in.role"].tolist()[2] == "admin"  # a field named like a metadata column keeps its prefix
    assert frame["prediction"].tolist() == ["yes"] * 3


def test_partitions_by_hour_and_reads_a_time_range(tmp_path: Path) -> None:
    log = InferenceLog(str(tmp_path), "d", replica="r1")
    for h in range(3):
        log.log(request_id=f"h{h}", model="m", version=1, role="route", inputs=[{"x": h}], outputs=[0],
                latency_ms=1, timestamp_ms=T0 + h * HOUR + 10)
    log.close()
    folders = sorted(p.parent.relative_to(tmp_path).as_posix() for p in _parquet_files(tmp_path))
    assert folders == [f"d/date=2026-01-01/hour=0{h}" for h in range(3)]
    frame = read_log(str(tmp_path), "d", since_ms=T0 + HOUR, until_ms=T0 + 2 * HOUR)
    assert frame["request_id"].tolist() == ["h1"]


def test_a_failed_write_shows_nothing_and_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = il._write_parquet

    def crash_halfway(table, where, fs):  # type: ignore[no-untyped-def]
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(il, "_write_parquet", crash_halfway)
    log = InferenceLog(str(tmp_path), "d", flush_seconds=60, replica="r1")
    for i in range(10):
        log.log(request_id=f"r{i}", model="m", version=1, role="route", inputs=[{"x": i}], outputs=[0],
                latency_ms=1, timestamp_ms=T0 + i)
    with pytest.raises(BackendUnavailable, match="disk full"):
        log.flush()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # neither a partial file nor a temporary one
    assert read_log(str(tmp_path), "d").empty
    assert log.pending == 10 and log.failed_writes == 1

    monkeypatch.setattr(il, "_write_parquet", real)
    log.close()
    assert read_log(str(tmp_path), "d")["x"].tolist() == list(range(10))
    assert log.dropped == 0 and log.pending == 0


def test_a_process_killed_mid_write_leaves_no_visible_file(tmp_path: Path) -> None:
    code = f"""
import os
from arsenale.serving.inference_log import InferenceLog
log = InferenceLog({str(tmp_path)!r}, "d", flush_seconds=60, replica="r1")
log.log(request_id="r", model="m", version=1, role="route", inputs=[{{"x": 1}}], outputs=[0], latency_ms=1,
        timestamp_ms={T0})
os.replace = lambda *a: os._exit(3)  # die after the data is written, before it is published
log.flush()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers)
    assert read_log(str(tmp_path), "d").empty


def test_a_writer_that_falls_behind_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = il._write_parquet

    def slow(table, where, fs):  # type: ignore[no-untyped-def]
        release.wait(30)
        real(table, where, fs)

    monkeypatch.setattr(il, "_write_parquet", slow)
    log = InferenceLog(str(tmp_path), "d", flush_rows=100, flush_seconds=0.01, max_pending_rows=1_000,
                       replica="r1")
    start = time.perf_counter()
    for i in range(5_000):
        log.log(request_id=f"r{i}", model="m", version=1, role="route", inputs=[{"x": i}], outputs=[0],
                latency_ms=1, timestamp_ms=T0 + i)
    assert time.perf_counter() - start < 5  # never blocked on the stuck writer
    assert log.dropped == 5_000 - 1_000
    release.set()
    log.close()
    assert len(read_log(str(tmp_path), "d")) == 1_000


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "/abs", "", "x\\y", ".hidden"])
def test_names_that_leave_the_root_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput):
        InferenceLog(str(tmp_path), name)
    with pytest.raises(InvalidInput):
        read_log(str(tmp_path), name)
    with pytest.raises(InvalidInput):
        online_accuracy(str(tmp_path), name)
    assert not list(tmp_path.parent.glob("escape"))


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        InferenceLog(str(tmp_path), "d", replica="../r")
    with pytest.raises(InvalidInput):
        InferenceLog(str(tmp_path), "d", sample_rate=1.5)
    log = InferenceLog(str(tmp_path), "d")
    with pytest.raises(InvalidInput):
        log.log(request_id="r", model="m", version=1, role="judge", inputs=[{}], outputs=[0], latency_ms=1,
                timestamp_ms=T0)
    log.close()
    with pytest.raises(InvalidInput):
        read_log(str(tmp_path), "d", role="judge")
    log.log(request_id="r", model="m", version=1, role="route", inputs=[{"x": 1}], outputs=[0], latency_ms=1,
            timestamp_ms=T0)
    assert log.dropped == 1  # after close: counted, never raised on the request path


@pytest.mark.s3
def test_an_s3_bucket_works_like_a_folder(s3_endpoint: str) -> None:
    import uuid

    import s3fs

    from tests.conftest import S3_OPTIONS

    bucket = f"inference-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(**S3_OPTIONS, client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    root = f"s3://{bucket}/logs"
    options = {**S3_OPTIONS, "client_kwargs": {"endpoint_url": s3_endpoint}}
    log = InferenceLog(root, "d", replica="r1", storage_options=options)
    for i in range(5):
        log.log(request_id=f"r{i}", model="m", version=1, role="route", inputs=[{"x": i}], outputs=[i % 2],
                latency_ms=1, timestamp_ms=T0 + i)
        log.feedback(f"r{i}", 1, T0 + 10)
    log.close()
    frame = read_log(root, "d", storage_options=options)
    assert frame["x"].tolist() == list(range(5)) and frame["label"].tolist() == [1.0] * 5
    assert online_accuracy(root, "d", storage_options=options) == {
        "m/1": {"labelled": 5, "correct": 2, "accuracy": 0.4}}
