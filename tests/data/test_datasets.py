"""Versioned datasets on SQLite, PostgreSQL and over HTTP: register, deduplicate, resolve, read verified,
gate by validation policy, record run lineage; concurrent registrations get distinct consecutive numbers."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris

import arsenale as ars
from arsenale.data.validation import DataSchema, infer_data_schema
from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.platform import Client
from tests.conftest import race


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    return frame.reset_index(drop=True)


def snapshot(client: Client) -> Any:
    """Everything a refused call could have changed."""
    found = client.datasets.list()
    versions = {d.name: [v.model_dump() for v in client.datasets.versions(d.name)] for d in found}
    return [d.model_dump() for d in found], versions, len(client.audit.entries(limit=None))


def _dirty(iris: pd.DataFrame) -> pd.DataFrame:
    bad = iris.copy()
    bad.loc[3, "sepal length (cm)"] = 42.0        # above max
    bad.loc[7, "species"] = "unknown"              # outside the categories
    bad.loc[11, "petal width (cm)"] = np.nan       # null in a non-nullable column
    return bad


# ---- register, deduplicate, resolve, read ----------------------------------------------------------------


def test_register_dedupe_versions_latest_and_read(client: Client, iris: pd.DataFrame, tmp_path: Path) -> None:
    v1 = client.datasets.register("iris", iris, description="Fisher's iris")
    assert (v1.version, v1.status.value, v1.rows, v1.columns) == (1, "published", 150, 5)
    assert v1.format == "parquet" and [f.path for f in v1.files] == ["data.parquet"]
    assert v1.source == "dataframe" and v1.validation is None and v1.uri == "dataset:iris@1"
    assert {c["name"]: c["dtype"] for c in v1.data_schema["columns"]}["species"] == "string"
    assert v1.profile["rows"] == 150

    again = client.datasets.register("iris", iris.copy())  # same content: the same version
    assert again.version == 1 and again.digest == v1.digest

    # The same data from Arrow and from files: still the same fingerprint.
    assert client.datasets.register("iris", pa.Table.from_pandas(iris, preserve_index=False)).version == 1
    iris.to_csv(tmp_path / "iris.csv", index=False)
    assert client.datasets.register("iris", tmp_path / "iris.csv").version == 1

    v2 = client.datasets.register("iris", iris.iloc[:100])
    assert v2.version == 2 and v2.digest != v1.digest
    assert [v.version for v in client.datasets.versions("iris")] == [2, 1]
    assert client.datasets.get("iris").version == 2
    assert client.datasets.get("iris", "1").digest == v1.digest
    info = client.datasets.get_dataset("iris")
    assert (info.latest_version, info.versions, info.description) == (2, 2, "Fisher's iris")
    assert [d.name for d in client.datasets.list()] == ["iris"]

    table = client.datasets.read("iris", 1)
    assert isinstance(table, pa.Table)
    pd.testing.assert_frame_equal(table.to_pandas(), iris, check_dtype=False)
    assert client.datasets.read("iris").num_rows == 100
    assert [e.entity_id for e in client.audit.entries(action="dataset.register", limit=None)] == \
        ["iris/1", "iris/2"]


def test_csv_and_parquet_files(client: Client, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"id": np.arange(50), "amount": rng.gamma(2.0, 10.0, 50).round(2),
                       "when": pd.date_range("2024-01-01", periods=50, freq="h")})
    df.to_parquet(tmp_path / "tx.parquet", index=False)
    v = client.datasets.register("tx", tmp_path / "tx.parquet")
    assert v.source == "parquet:tx.parquet" and v.rows == 50
    out = client.datasets.read("tx", v.version).to_pandas()
    assert out["when"].iloc[3] == pd.Timestamp("2024-01-01 03:00") and out["amount"].sum() == df["amount"].sum()


def test_tampered_blob_is_refused(client: Client, iris: pd.DataFrame, tmp_path: Path) -> None:
    if client.uri.startswith("http"):
        pytest.skip("the server's blobs live with the server; covered on the embedded backends")
    v = client.datasets.register("iris", iris)
    digest = v.files[0].digest
    blob = tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        client.datasets.read("iris", v.version)


# ---- policies --------------------------------------------------------------------------------------------


def test_quarantine_publishes_clean_rows_and_sets_failures_aside(client: Client, iris: pd.DataFrame) -> None:
    schema = infer_data_schema(iris)
    v = client.datasets.register("iris", _dirty(iris), schema=schema, policy="quarantine")
    assert v.status.value == "quarantined" and v.rows == 147
    assert [f.path for f in v.files] == ["data.parquet", "quarantine.parquet"]
    assert v.validation is not None and v.validation["failing_rows"] == 3 and not v.validation["passed"]
    assert client.datasets.get("iris").version == v.version  # quarantined versions are published
    clean = client.datasets.read("iris", v.version).to_pandas()
    assert len(clean) == 147 and clean["sepal length (cm)"].max() < 42
    bad = client.datasets.read("iris", v.version, quarantine=True).to_pandas()
    assert sorted(bad["_reason"]) == ["categories(species)", "max(sepal length (cm))",
                                      "not_null(petal width (cm))"]
    report = client.datasets.report("iris", v.version)
    assert {(c.check, c.column) for c in report.failures} == {
        ("max", "sepal length (cm)"), ("categories", "species"), ("not_null", "petal width (cm)")}
    # The same dirty data again: the same outcome, the same version.
    assert client.datasets.register("iris", _dirty(iris), schema=schema, policy="quarantine").version == v.version


def test_reject_keeps_the_version_but_never_as_latest(client: Client, iris: pd.DataFrame) -> None:
    schema = infer_data_schema(iris)
    ok = client.datasets.register("iris", iris, schema=schema)
    assert ok.status.value == "published" and ok.validation is not None and ok.validation["passed"]
    rejected = client.datasets.register("iris", _dirty(iris), schema=schema.model_dump(), policy="reject")
    assert (rejected.version, rejected.status.value, rejected.rows) == (2, "rejected", 150)
    assert client.datasets.get("iris").version == 1
    assert client.datasets.get_dataset("iris").latest_version == 1
    assert client.datasets.read("iris", 2).num_rows == 150  # kept for inspection, by number
    with pytest.raises(NotFound):
        client.datasets.read("iris", 2, quarantine=True)
    # A table-level failure cannot be quarantined away.
    missing = iris.drop(columns=["species"])
    v = client.datasets.register("iris", missing, schema=schema, policy="quarantine")
    assert v.status.value == "rejected" and client.datasets.get("iris").version == 1


def test_allow_publishes_everything_and_keeps_the_report(client: Client, iris: pd.DataFrame) -> None:
    v = client.datasets.register("iris", _dirty(iris), schema=infer_data_schema(iris).to_json(), policy="allow")
    assert v.status.value == "published" and v.rows == 150
    assert v.validation is not None and v.validation["failing_rows"] == 3
    assert client.datasets.get("iris").version == v.version
    assert client.datasets.report("iris").failing_rows == 3


def test_only_rejected_versions_resolve_latest_to_not_found(client: Client, iris: pd.DataFrame) -> None:
    strict = DataSchema(columns=[], min_rows=1000)
    client.datasets.register("iris", iris, schema=strict)
    with pytest.raises(NotFound):
        client.datasets.get("iris")
    assert client.datasets.get("iris", 1).status.value == "rejected"


# ---- bad input -------------------------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(client: Client, iris: pd.DataFrame, tmp_path: Path) -> None:
    client.datasets.register("iris", iris)
    before = snapshot(client)
    with pytest.raises(NotFound):
        client.datasets.get("nope")
    with pytest.raises(NotFound):
        client.datasets.get("iris", 9)
    with pytest.raises(NotFound):
        client.datasets.read("iris", 9)
    with pytest.raises(NotFound):
        client.datasets.versions("nope")
    with pytest.raises(NotFound):
        client.datasets.report("iris", 1)  # registered without a schema
    with pytest.raises(InvalidInput):
        client.datasets.get("iris", "v1")
    with pytest.raises(InvalidInput):
        client.datasets.get("iris", 0)
    for bad_schema in ('{"columns": [{"name": "x", "min": "abc"}]}', "{not json", '{"columns": 3}',
                       {"columns": [{"name": "x"}, {"name": "x"}]}, {"min_rows": -1}, {"colums": []}, 42):
        with pytest.raises(InvalidInput) as err:
            client.datasets.register("iris", iris.iloc[:10], schema=bad_schema)
        assert err.value.field == "schema"
    with pytest.raises(InvalidInput):
        client.datasets.register("iris", iris.iloc[:10], policy="maybe")
    with pytest.raises(InvalidInput):
        client.datasets.register("bad/name", iris)
    with pytest.raises(InvalidInput):
        client.datasets.register("iris", {"a": [1, 2]})
    with pytest.raises(InvalidInput):
        client.datasets.register("iris", iris.assign(_reason="x"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInput):
        client.datasets.register("iris", tmp_path / "broken.parquet")
    with pytest.raises(InvalidInput):
        client.datasets.register("iris", tmp_path / "data.xlsx")
    with pytest.raises(NotFound):
        client.datasets.register("iris", tmp_path / "missing.csv")
    with pytest.raises(NotFound):
        client.datasets.record_input("0" * 32, "iris", 1)
    assert snapshot(client) == before


# ---- lineage ---------------------------------------------------------------------------------------------


def test_sdk_reads_inside_a_run_are_its_inputs(client: Client, iris: pd.DataFrame, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("ARSENALE_URI", client.uri)
    monkeypatch.setenv("ARSENALE_ARTIFACTS", str(tmp_path / "artifacts"))
    first = ars.register_dataset("iris", iris)
    ars.register_dataset("iris", iris.iloc[:120])
    ds = ars.Dataset("iris", version="1")
    assert (ds.name, ds.version, ds.digest) == ("iris", 1, first.digest)
    assert ds.schema.names == list(iris.columns) and ds.profile.rows == 150 and ds.validation is None
    outside = ds.to_pandas()  # no active run: nothing recorded
    assert len(outside) == 150
    with ars.start_run(experiment="flowers") as run:
        frame = ars.Dataset("iris", version="1").to_pandas()
        X, y = frame.drop(columns=["species"]), frame["species"]
        mv = ars.register_model("iris-clf", LogisticRegression(max_iter=1000).fit(X, y))
    assert [(i.name, i.version) for i in client.datasets.inputs(run.run_id)] == [("iris", 1)]
    assert client.tracking.get_run(run.run_id).data.tags["ars.input.iris"] == "1"
    lineage = client.registry.lineage("iris-clf", mv.version)
    assert {"kind": "dataset", "name": "iris", "version": "1"} in lineage.data
    with pytest.raises(NotFound):
        client.datasets.inputs("f" * 32)


# ---- concurrency -----------------------------------------------------------------------------------------

PROCS = 3
PER_PROC = 3


def _register(uri: str, artifacts: str, worker: int, start: Any, out: Any) -> None:
    datasets = Client(uri, artifacts=artifacts, actor=f"worker-{worker}").datasets
    start.wait(30)
    for i in range(PER_PROC):
        frame = pd.DataFrame({"worker": [worker] * 5, "i": [i] * 5, "x": np.arange(5.0)})
        out.put((datasets.register("shared", frame).version, worker, i))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_concurrent_registrations_get_consecutive_numbers(store_uri: str, tmp_path: Path, method: str) -> None:
    artifacts = str(tmp_path / "artifacts")
    client = Client(store_uri, artifacts=artifacts)
    results = race(method, PROCS, PER_PROC, _register, store_uri, artifacts)
    n = PROCS * PER_PROC
    assert sorted(v for v, _, _ in results) == list(range(1, n + 1))
    for version, worker, i in results:  # each number holds the data of the registration told it
        frame = client.datasets.read("shared", version).to_pandas()
        assert (frame["worker"].iloc[0], frame["i"].iloc[0]) == (worker, i)
    assert client.datasets.get("shared").version == n
    assert client.audit.verify().ok


def test_concurrent_identical_data_is_one_version(store_uri: str, tmp_path: Path) -> None:
    artifacts = str(tmp_path / "artifacts")
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_register_same, args=(store_uri, artifacts, start, out)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    versions = {out.get(timeout=120) for _ in procs}
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert versions == {1}
    assert [v.version for v in Client(store_uri, artifacts=artifacts).datasets.versions("same")] == [1]


def _register_same(uri: str, artifacts: str, start: Any, out: Any) -> None:
    datasets = Client(uri, artifacts=artifacts).datasets
    start.wait(30)
    out.put(datasets.register("same", pd.DataFrame({"x": np.arange(100)})).version)


def test_parquet_roundtrip_keeps_types(client: Client, tmp_path: Path) -> None:
    df = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "b": [True, False, True],
                       "c": pd.Categorical(["a", "b", "a"]), "s": ["x", None, "z"]})
    v = client.datasets.register("types", df)
    table = client.datasets.read("types", v.version)
    assert table.schema.field("i").type == pa.int64() and table.schema.field("b").type == pa.bool_()
    pq.write_table(table, tmp_path / "back.parquet")
    assert client.datasets.register("types", tmp_path / "back.parquet").version == v.version
