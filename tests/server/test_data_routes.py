"""The datasets' routes in-process: a raw CSV/Parquet upload with the policy as a query parameter,
lookups, the verified download, validation reports, and bad requests answered with the one error shape."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from arsenale.data.validation import infer_data_schema
from arsenale.platform import Client
from arsenale.server.app import create_app
from arsenale.store.artifacts import hash_bytes
from tests.server.test_app import BAD, MISSING, assert_error

API = "/api/v1"


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client(f"sqlite:///{tmp_path}/db.sqlite", artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def api(client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(client)) as test_client:
        yield test_client


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"id": np.arange(40), "amount": rng.uniform(0, 100, 40).round(2),
                         "country": rng.choice(["it", "fr", "de"], 40)})


def test_upload_csv_then_get_list_download_and_report(api: TestClient, frame: pd.DataFrame) -> None:
    schema = infer_data_schema(frame)
    dirty = frame.copy()
    dirty.loc[0, "amount"] = 1e6
    r = api.post(f"{API}/datasets/tx/upload", params={"format": "csv", "policy": "quarantine",
                                                      "schema": schema.to_json(), "description": "cards"},
                 content=dirty.to_csv(index=False).encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["version"], body["status"], body["rows"], body["source"]) == (1, "quarantined", 39, "upload")
    assert api.get(f"{API}/datasets/tx/versions/latest").json()["version"] == 1
    assert [d["name"] for d in api.get(f"{API}/datasets").json()] == ["tx"]
    assert api.get(f"{API}/datasets/tx").json()["description"] == "cards"
    assert [v["version"] for v in api.get(f"{API}/datasets/tx/versions").json()] == [1]
    report = api.get(f"{API}/datasets/tx/versions/1/validation").json()
    assert report["failing_rows"] == 1 and not report["passed"]
    data = api.get(f"{API}/datasets/tx/versions/1/download")
    assert data.status_code == 200 and data.headers["X-Arsenale-Digest"] == hash_bytes(data.content)
    assert len(pq.read_table(io.BytesIO(data.content))) == 39
    bad = api.get(f"{API}/datasets/tx/versions/1/download", params={"quarantine": "true"})
    assert pq.read_table(io.BytesIO(bad.content)).column("_reason").to_pylist() == ["max(amount)"]


def test_upload_parquet_body(api: TestClient, frame: pd.DataFrame) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    r = api.post(f"{API}/datasets/tx/upload", params={"format": "parquet"}, content=buf.getvalue(),
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.json()["rows"] == 40


def test_bad_requests_leave_the_store_as_it_was(api: TestClient, client: Client, frame: pd.DataFrame) -> None:
    csv = frame.to_csv(index=False).encode()
    assert_error(api.post(f"{API}/datasets/tx/upload", params={"format": "xlsx"}, content=csv), 400, BAD,
                 "format")
    assert_error(api.post(f"{API}/datasets/tx/upload", params={"format": "csv", "policy": "maybe"},
                          content=csv), 400, BAD, "policy")
    assert_error(api.post(f"{API}/datasets/tx/upload", params={"format": "csv", "schema": "{oops"},
                          content=csv), 400, BAD, "schema")
    assert_error(api.post(f"{API}/datasets/tx/upload", params={"format": "parquet"}, content=b"garbage"),
                 400, BAD, "data")
    assert_error(api.post(f"{API}/datasets/tx/upload", params={"format": "csv"}, content=b""), 400, BAD, "body")
    assert_error(api.post(f"{API}/datasets/tx/versions", json={"digest": "0" * 64}), 400, BAD, "digest")
    assert_error(api.post(f"{API}/datasets/tx/versions", json={"digest": "0" * 64, "colour": 1}), 400, BAD)
    assert_error(api.get(f"{API}/datasets/tx"), 404, MISSING, "name")
    assert_error(api.get(f"{API}/datasets/tx/versions/3"), 404, MISSING)
    assert_error(api.get(f"{API}/datasets/tx/versions/three"), 400, BAD, "version")
    assert_error(api.post(f"{API}/runs/{'0' * 32}/inputs", json={"name": "tx", "version": 1}), 404, MISSING)
    assert client.datasets.list() == [] and client.audit.entries(limit=None) == []
    api.post(f"{API}/datasets/tx/upload", params={"format": "csv"}, content=csv)
    assert_error(api.get(f"{API}/datasets/tx/versions/1/validation"), 404, MISSING)
    assert_error(api.get(f"{API}/datasets/tx/versions/1/download", params={"quarantine": "true"}), 404, MISSING)
    assert json.loads(api.get("/openapi.json").text)["paths"][f"{API}/datasets/{{name}}/upload"]
