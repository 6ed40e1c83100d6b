"""Push and pull through a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from arsenale.data.cache import DataRemote
from tests.conftest import S3_OPTIONS
from tests.data.conftest import make_workspace, write_tree


@pytest.mark.s3
def test_push_and_pull_through_s3(s3_endpoint: str, tmp_path: Path) -> None:
    import s3fs

    bucket = f"d{uuid.uuid4().hex[:16]}"
    s3fs.S3FileSystem(**S3_OPTIONS, client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    remote = DataRemote(f"s3://{bucket}/data", **S3_OPTIONS, client_kwargs={"endpoint_url": s3_endpoint})
    files = {"a.txt": b"alpha\n", "big.bin": os.urandom(120_000)}
    write_tree(tmp_path / "p" / "data", files)
    ws = make_workspace(tmp_path / "p", remote)
    ws.add(tmp_path / "p" / "data")
    first = ws.push()
    assert first.transferred == first.objects > 5
    assert ws.push().transferred == 0
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(tmp_path / "p" / "data.ars", clone / "data.ars")
    other = make_workspace(clone, remote)
    other.pull()
    assert (clone / "data" / "big.bin").read_bytes() == files["big.bin"]
