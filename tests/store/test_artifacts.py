"""Artifact store conformance: local folder and a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from arsenale.errors import IntegrityError, InvalidInput, NotFound
from arsenale.store.artifacts import FsspecArtifactStore, LocalArtifactStore, hash_bytes, open_artifact_store
from tests.conftest import S3_OPTIONS


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> LocalArtifactStore | FsspecArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    endpoint = request.getfixturevalue("s3_endpoint")
    import s3fs

    bucket = f"b{uuid.uuid4().hex[:16]}"
    s3fs.S3FileSystem(**S3_OPTIONS, client_kwargs={"endpoint_url": endpoint}).mkdir(bucket)
    return FsspecArtifactStore(f"s3://{bucket}/artifacts", **S3_OPTIONS,
                               client_kwargs={"endpoint_url": endpoint})


def test_put_get_dedup_and_download(blobs: LocalArtifactStore | FsspecArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(payload)
    digest, size = blobs.put_file(src)
    assert digest == hash_bytes(payload) and size == len(payload)
    assert blobs.put_bytes(payload) == (digest, size)  # same content, same blob
    assert blobs.exists(digest)
    assert blobs.get_bytes(digest) == payload
    out = blobs.download(digest, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == payload
    empty, _ = blobs.put_bytes(b"")
    assert blobs.get_bytes(empty) == b""


def test_missing_and_malformed_digests(blobs: LocalArtifactStore | FsspecArtifactStore) -> None:
    with pytest.raises(NotFound):
        blobs.get_bytes("0" * 64)
    for bad in ["../../etc/passwd", "ABC", "g" * 64]:
        with pytest.raises(InvalidInput):
            blobs.get_bytes(bad)


def test_tampered_blob_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    digest, _ = store.put_bytes(b"model weights")
    path = Path(store.root) / "blobs" / digest[:2] / digest[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"evil weights")
    with pytest.raises(IntegrityError):
        store.get_bytes(digest)
    with pytest.raises(IntegrityError):
        store.download(digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_open_artifact_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_artifact_store(str(tmp_path)), LocalArtifactStore)
    assert isinstance(open_artifact_store(f"file://{tmp_path}"), LocalArtifactStore)
    assert isinstance(open_artifact_store("memory://bucket"), FsspecArtifactStore)


_UPLOADER = """
import sys
from arsenale.platform import Client
client = Client(sys.argv[1], artifacts=sys.argv[2])
print("ready", flush=True)
client.tracking.log_artifact(sys.argv[3], sys.argv[4])
"""


def test_sigkill_during_upload_leaves_nothing_visible(tmp_path: Path) -> None:
    from arsenale.platform import Client

    uri, artifacts = f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "artifacts")
    client = Client(uri, artifacts=artifacts)
    run_id = client.tracking.create_run(client.tracking.create_experiment("kill").experiment_id).info.run_id
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(400):
            f.write(os.urandom(1 << 20))
    proc = subprocess.Popen([sys.executable, "-c", _UPLOADER, uri, artifacts, run_id, str(big)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    tmp_dir = Path(artifacts) / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (tmp_dir.exists() and any(tmp_dir.iterdir())):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert client.tracking.list_artifacts(run_id) == []
    blobs_dir = Path(artifacts) / "blobs"
    assert not blobs_dir.exists() or not any(p.is_file() for p in blobs_dir.rglob("*"))
